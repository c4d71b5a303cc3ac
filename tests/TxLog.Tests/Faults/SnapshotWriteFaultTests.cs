using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Faults;

/// <summary>
/// A producer snapshot written at a segment roll is best effort: a failure to write it must neither
/// fail the append (whose batch is already in the log) nor leave the producer state without the batch.
/// Regression: only IOException was caught, so an UnauthorizedAccessException (EACCES/EPERM on the
/// rename) failed the append after the batch was written and skipped the producer-state update, and
/// the producer's retry of that batch was written a second time.
/// </summary>
public sealed class SnapshotWriteFaultTests
{
    private const long Pid = 4242;

    // Throws UnauthorizedAccessException (EACCES/EPERM) when a producer snapshot is renamed into place.
    private sealed class SnapshotDeniedFileSystem : DelegatingFileSystem
    {
        public bool Deny { get; set; }

        public int Denied { get; private set; }

        public override void MoveFile(string source, string destination)
        {
            if (Deny && destination.EndsWith(".snapshot", StringComparison.Ordinal))
            {
                Denied++;
                throw new UnauthorizedAccessException("Access to the path '" + destination + "' is denied.");
            }

            base.MoveFile(source, destination);
        }
    }

    [Test]
    public void A_snapshot_that_cannot_be_written_at_a_roll_neither_fails_the_append_nor_lets_its_retry_be_written_twice()
    {
        using var dir = new TempDirectory();
        var fs = new SnapshotDeniedFileSystem();
        LogStoreOptions options = Options();
        options.FileSystem = fs;
        options.SegmentBytes = 300;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        int seq = 0;
        while (p.SegmentCount == 1)
        {
            Assert.That(AppendRaw(store, p, Pid, 0, seq, false, $"value-{seq:D3}")!.Value.IsDuplicate, Is.False);
            seq++;
        }

        fs.Deny = true;
        long end = p.LogEndOffset;
        int segments = p.SegmentCount;
        AppendResult? first = null;
        int rolling = seq;
        while (p.SegmentCount == segments)
        {
            rolling = seq;
            try
            {
                first = AppendRaw(store, p, Pid, 0, seq, false, $"value-{seq:D3}");
            }
            catch (UnauthorizedAccessException)
            {
                first = null;
                break;
            }

            seq++;
        }

        Assert.That(fs.Denied, Is.EqualTo(1), "precondition: the roll tried to write a snapshot");
        fs.Deny = false;
        long written = p.LogEndOffset;

        // The producer did not get an answer (or got one): it retries the same batch.
        AppendResult retry = AppendRaw(store, p, Pid, 0, rolling, false, $"value-{rolling:D3}")!.Value;
        Assert.That(p.LogEndOffset, Is.EqualTo(written), "the retry of a batch already in the log was written again");
        Assert.That(retry.IsDuplicate, Is.True);
        Assert.That(first, Is.Not.Null, "the append failed although its batch is in the log");
    }
}
