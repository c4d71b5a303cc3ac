using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Retention deletes whole old segments without regard to open transactions: when an open
/// transaction's first records are in a deleted segment, the last stable offset stays at that
/// transaction's first offset, below the new log start offset.
/// </summary>
public class RetentionLsoTests
{
    [Test]
    public async Task The_last_stable_offset_never_falls_below_the_log_start_after_retention()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Tx.Options(DurabilityMode.GroupCommit);
        options.SegmentBytes = 1000;
        options.RetentionBytes = 1;
        options.PreallocateBytes = 0;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        LogPartition p = store.GetPartition("t", 0);
        await using Producer tx = await Tx.TransactionalAsync(store, "tx");
        tx.BeginTransaction();
        await tx.ProduceAsync(tp, Tx.Msg("open")); // offset 0, in the first segment
        for (int i = 0; i < 30; i++)
        {
            await p.AppendAsync([new Message(new byte[150])]);
        }

        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition: the first segment is deleted");
        Assert.That(p.LogStartOffset, Is.GreaterThan(0), "precondition");

        Assert.That(p.LastStableOffset, Is.GreaterThanOrEqualTo(p.LogStartOffset), "LSO below the log start offset");

        // What a caller meets: a read-committed consumer that starts at the end, and SeekToEnd.
        using Consumer latest = store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = AutoOffsetReset.Latest });
        latest.Assign(tp);
        Assert.DoesNotThrow(() => latest.Consume(), "a new read-committed consumer with AutoOffsetReset.Latest");
        Assert.DoesNotThrow(() => latest.SeekToEnd(tp), "SeekToEnd on a read-committed consumer");
    }
}

/// <summary>
/// docs/transactions.md: "After a reopen the state comes from the newest snapshot at or below the
/// recovery point plus a replay of the batches after it ... so the last five batches of each producer
/// are still recognised." After retention and one clean close, a kill -9 loses them.
/// </summary>
public class RetentionProducerStateTests
{
    [Test]
    public async Task A_retry_is_still_a_duplicate_after_retention_a_clean_close_and_a_kill_9()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        LogStoreOptions options = Tx.Options(DurabilityMode.GroupCommit);
        options.SegmentBytes = 1000;
        options.RetentionBytes = 1500;
        options.PreallocateBytes = 0;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int s = 0; s < 3; s++)
            {
                Tx.AppendRaw(store, p, 4242, 0, s, false, "idem" + s); // offsets 0..2, first segment
            }

            for (int i = 0; i < 30; i++)
            {
                await p.AppendAsync([new Message(new byte[150])]); // rolls; a snapshot at each roll
            }

            Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
            Assert.That(p.LogStartOffset, Is.GreaterThan(2), "precondition: the producer's batches are gone");
        }

        // One more clean session that appends: its close snapshot (at the log end) and the previous
        // close's push the roll snapshot at the active segment's base out (two are kept).
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.GetPartition("t", 0).Append(new Message(TestRecords.Bytes("more")));
        }

        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            Tx.CopyImage(dir.Path, image.Path); // kill -9 while open
        }

        using LogStore recovered = LogStore.Open(image.Path, options);
        LogPartition r = recovered.GetPartition("t", 0);
        AppendResult? retry = Tx.AppendRaw(recovered, r, 4242, 0, 2, false, "idem2"); // throws OutOfOrderSequenceException today
        Assert.That(retry!.Value.IsDuplicate, Is.True);
    }
}
