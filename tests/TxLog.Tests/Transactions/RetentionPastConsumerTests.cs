using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Read-committed consumers whose position retention deletes, and consume loops waiting while it does.
/// A read-committed consumer caught up at an open transaction waits at the LSO; when retention deletes
/// the transaction's first records, the LSO jumps to the new log start and the position is out of range.
/// Retention must wake the loop (nothing else may happen for a long time).
/// </summary>
public sealed class RetentionPastConsumerTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    private static LogStore OpenStore(TempDirectory dir)
    {
        LogStoreOptions options = Options(); // durability None: no fsync moves the HW behind the test's back
        options.SegmentBytes = 1000;
        options.RetentionBytes = 1;
        options.RetentionCheckInterval = TimeSpan.FromHours(1); // the tests run retention themselves
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        return store;
    }

    // Offset 0 plain, offset 1 the first record of a transaction left open, then enough plain records to
    // roll several segments, so retention can delete the transaction's first record.
    private static async Task<Producer> PlainThenOpenTransactionThenMoreAsync(LogStore store, LogPartition p)
    {
        p.Append(Msg("plain"));
        Producer tx = await TransactionalAsync(store, "tx");
        tx.BeginTransaction();
        DeliveryResult open = await tx.ProduceAsync(T0, Msg("open"));
        Assert.That(open.Offset, Is.EqualTo(1), "precondition");
        for (int i = 0; i < 30; i++)
        {
            p.Append(new Message(new byte[150]));
        }

        Assert.That(p.LastStableOffset, Is.EqualTo(1), "precondition: the open transaction holds the LSO");
        return tx;
    }

    private static long DeleteTheTransactionsFirstRecord(LogStore store, LogPartition p)
    {
        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
        long start = p.LogStartOffset;
        Assert.That(start, Is.GreaterThan(1), "precondition: the open transaction's first record is deleted");
        Assert.That(p.LastStableOffset, Is.EqualTo(start), "precondition: the LSO follows the log start");
        return start;
    }

    [Test]
    public async Task A_waiting_loop_is_woken_by_retention_and_throws_with_Error()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenStore(dir);
        LogPartition p = store.GetPartition("t", 0);
        await using Producer tx = await PlainThenOpenTransactionThenMoreAsync(store, p);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g", AutoOffsetReset = AutoOffsetReset.Error });
        await consumer.Commit([new TopicPartitionOffset(T0, 0)]); // with Error, Assign needs a committed offset
        consumer.Assign(T0);
        using var cts = new CancellationTokenSource();
        IAsyncEnumerator<ConsumeResult> loop = consumer.ConsumeAsync(cts.Token).GetAsyncEnumerator(); // disposed only once it is not waiting
        Assert.That(await loop.MoveNextAsync(), Is.True);
        Assert.That(loop.Current.Offset, Is.Zero);
        ValueTask<bool> next = loop.MoveNextAsync();
        Assert.That(next.IsCompleted, Is.False, "precondition: the loop waits at the open transaction");

        long start = DeleteTheTransactionsFirstRecord(store, p);

        Task<bool> woken = next.AsTask();
        Assert.That(await Task.WhenAny(woken, Task.Delay(Tx.Timeout)), Is.SameAs(woken), "retention moved the log start past the loop's position, and the loop still waits");
        OffsetOutOfRangeException? e = Assert.ThrowsAsync<OffsetOutOfRangeException>(() => woken);
        Assert.That(e!.Offset, Is.EqualTo(1));
        Assert.That(e.LogStartOffset, Is.EqualTo(start));
        await loop.DisposeAsync();
    }
}
