using TxLog.Storage;
using TxLog.Tests.Recovery;
using static TxLog.Tests.Faults.WriteFaultTests;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Faults;

/// <summary>
/// A group-commit partition writes zeros ahead of its data and fsyncs them from a background work
/// item. That fsync flushes every dirty page of the file, including appended batches not yet
/// committed, and Linux reports a writeback error to one fsync only: if the preallocation's fsync
/// swallowed it, the next commit fsync could succeed and acknowledge data the disk never got. So a
/// failed preallocation fsync must stop the partition like a failed commit fsync.
/// </summary>
[TestFixture]
public sealed class PreallocationFaultTests : FaultFixture
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Test]
    public async Task AFailedFsyncOfThePreallocatedZerosStopsThePartition()
    {
        int acknowledged = 0;
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);

            // Only the preallocation writes whole pieces of zeros; its fsync is the one that fails.
            Fs.FailSyncAfterWriteOfAtLeast(LogSegment.PreallocationPieceBytes);
            // The zero-fill starts with this append's fsync and runs on a pool thread: its failure may
            // stop the partition before the append's own fsync (then the append is, rightly, not
            // acknowledged). Either way, what was acknowledged must survive and nothing else may be.
            try
            {
                await partition.AppendAsync(Record(acknowledged).ToMessage()).AsTask().WaitAsync(Limit);
                acknowledged++;
            }
            catch (LogWriteException)
            {
                // The fault won the race.
            }
            Assert.That(SpinWait.SpinUntil(() => Fs.Faults == 1, Limit), Is.True, "precondition: the preallocation fsync met the fault");

            // The fault is reported by the background work item: wait for the partition to take it in.
            Assert.That(SpinWait.SpinUntil(() => partition.Log.Failure is not null, Limit), Is.True, "the partition recorded the failed fsync");
            Assert.ThrowsAsync<LogWriteException>(async () => await partition.AppendAsync(Record(100).ToMessage()).AsTask().WaitAsync(Limit));
            Assert.ThrowsAsync<LogWriteException>(async () => await partition.AppendAsync(Record(101).ToMessage()).AsTask().WaitAsync(Limit));
        }

        Assert.That(File.Exists(MarkerFile(Dir.Path)), Is.False, "no clean-shutdown marker after a failed fsync");
        using LogStore reopened = LogStore.Open(Dir.Path, Options());
        LogPartition p = reopened.GetPartition(Topic, 0);
        // Every acknowledged record, and at most the one in flight when the fault hit (records 100 and
        // 101 were refused before they were written).
        Assert.That(ReadAll(p), Is.EqualTo(Describe(Enumerable.Range(0, acknowledged).Select(id => new[] { Record(id) })))
            .Or.EqualTo(Describe(new[] { new[] { Record(0) } })));
        Assert.That(new FileInfo(LogFile(Dir.Path)).Length, Is.EqualTo(p.SizeInBytes), "the zeros after the data were cut off");
    }
}
