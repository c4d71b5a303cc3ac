using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Recovery;

/// <summary>
/// Regression: a damaged .txnindex of a segment whose batches the producer-state replay does not cover
/// (after a clean close the snapshot is at the log end, so nothing is replayed) was dropped with a
/// report line only: read-committed readers then returned the aborted transaction's records.
/// </summary>
public sealed class TxnIndexCorruptionTests
{
    private static async Task<string> WriteAbortedAndCommittedAsync(TempDirectory dir)
    {
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic("t");
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted-1"));
            await producer.AbortTransactionAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("committed-1"));
            await producer.CommitTransactionAsync();
        }

        string index = Path.Combine(dir.Path, "t-0", LogSegment.FileName(0, ".txnindex"));
        Assert.That(File.Exists(index), "precondition: the abort has an index entry");
        return index;
    }

    [TestCase("truncate")]
    [TestCase("version")]
    public async Task A_damaged_txnindex_never_makes_aborted_records_visible_to_read_committed(string damage)
    {
        using var dir = new TempDirectory();
        string index = await WriteAbortedAndCommittedAsync(dir);
        if (damage == "truncate")
        {
            using FileStream f = File.OpenWrite(index);
            f.SetLength(f.Length - 1);
        }
        else
        {
            byte[] bytes = File.ReadAllBytes(index);
            bytes[1] ^= 0x01; // entry version 0 -> 1
            File.WriteAllBytes(index, bytes);
        }

        List<string> values;
        try
        {
            using LogStore reopened = LogStore.Open(dir.Path, Options());
            values = Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted);
        }
        catch (TxLogException)
        {
            return; // reporting the damage with a typed exception is acceptable
        }

        Assert.That(values, Has.None.StartsWith("aborted"));
        Assert.That(values, Does.Contain("committed-1"));

        // and again after another clean close
        using LogStore again = LogStore.Open(dir.Path, Options());
        Assert.That(Values(again.GetPartition("t", 0), IsolationLevel.ReadCommitted), Has.None.StartsWith("aborted"));
    }
}

/// <summary>
/// Regression: .txnindex entries carried no checksum and were not checked against the log, so a
/// flipped producer id (or a file cut at an entry boundary, or deleted) was not detected, and
/// read-committed readers returned the aborted records (more cases: <see cref="TxnIndexIntegrityTests"/>).
/// </summary>
public sealed class TxnIndexUncheckedEntryTests
{
    [Test]
    public async Task A_flipped_producer_id_in_a_txnindex_entry_is_detected_or_repaired()
    {
        using var dir = new TempDirectory();
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic("t");
            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, Msg("aborted-1"));
            await producer.AbortTransactionAsync();
        }

        string index = Path.Combine(dir.Path, "t-0", LogSegment.FileName(0, ".txnindex"));
        byte[] bytes = File.ReadAllBytes(index);
        bytes[2] ^= 0x10; // high byte of the producer id
        File.WriteAllBytes(index, bytes);

        List<string> values;
        try
        {
            using LogStore reopened = LogStore.Open(dir.Path, Options());
            values = Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted);
        }
        catch (TxLogException)
        {
            return;
        }

        Assert.That(values, Has.None.StartsWith("aborted"));
    }
}
