using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Diagnostics;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Read-committed consumers whose position retention deletes, and consume loops waiting while it does.
/// A read-committed consumer caught up at an open transaction waits at the LSO; when retention deletes
/// the transaction's first records, the LSO jumps to the new log start and the position is out of range.
/// Retention must wake the loop (nothing else may happen for a long time), and the consumer then
/// follows <see cref="AutoOffsetReset"/>.
/// </summary>
public sealed class RetentionPastConsumerTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    private const int ConsumerResetEvent = 7001;

    private static LogStore OpenStore(TempDirectory dir, ListLoggerFactory? logs = null)
    {
        LogStoreOptions options = Options(); // durability None: no fsync moves the HW behind the test's back
        options.SegmentBytes = 1000;
        options.RetentionBytes = 1;
        options.RetentionCheckInterval = TimeSpan.FromHours(1); // the tests run retention themselves
        options.LoggerFactory = logs;
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

    private static List<string> Drain(Consumer consumer)
    {
        var seen = new List<string>();
        while (consumer.Consume() is { } r)
        {
            seen.Add($"{r.Offset}:{(r.Value is null ? "null" : TestRecords.Text(r.Value))}");
        }

        return seen;
    }

    [TestCase(AutoOffsetReset.Earliest)]
    [TestCase(AutoOffsetReset.Latest)]
    public async Task A_read_committed_consumer_at_an_open_transaction_goes_on_from_the_new_log_start(AutoOffsetReset reset)
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenStore(dir);
        LogPartition p = store.GetPartition("t", 0);
        await using Producer tx = await PlainThenOpenTransactionThenMoreAsync(store, p);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = reset });
        consumer.Assign(T0);
        consumer.SeekToBeginning(T0);
        Assert.That(Drain(consumer), Is.EqualTo(new[] { "0:plain" }));
        Assert.That(consumer.Position(T0), Is.EqualTo(1), "stopped at the open transaction");

        long start = DeleteTheTransactionsFirstRecord(store, p);

        Assert.That(Drain(consumer), Is.Empty, "the transaction is still open: nothing past the LSO");
        Assert.That(consumer.Position(T0), Is.EqualTo(start), "both policies land on the LSO, which is the log start here");
        await tx.CommitTransactionAsync();
        Assert.That(Drain(consumer), Is.EqualTo(Read(p, start, IsolationLevel.ReadCommitted)), "every record still in the log from the log start, once");
    }

    [Test]
    public async Task Latest_for_a_read_committed_consumer_is_the_LSO_not_the_HW()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenStore(dir);
        LogPartition p = store.GetPartition("t", 0);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = AutoOffsetReset.Latest });
        consumer.Assign(T0);
        for (int i = 0; i < 30; i++)
        {
            p.Append(new Message(new byte[150]));
        }

        Assert.That(consumer.Consume()!.Offset, Is.Zero);
        await using Producer tx = await TransactionalAsync(store, "tx");
        tx.BeginTransaction();
        p.Roll(); // the transaction starts the active segment, which retention keeps
        long open = (await tx.ProduceAsync(T0, Msg("open"))).Offset;
        p.Append(Msg("after"));
        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
        Assert.That(p.LogStartOffset, Is.GreaterThan(1).And.LessThanOrEqualTo(open), "precondition: the position is deleted, the open transaction is not");
        Assert.That(p.LastStableOffset, Is.EqualTo(open).And.LessThan(p.HighWatermark), "precondition");

        Assert.That(consumer.Consume(), Is.Null);
        Assert.That(consumer.Position(T0), Is.EqualTo(open), "the end for read-committed is the open transaction");
        await tx.CommitTransactionAsync();
        Assert.That(Drain(consumer), Is.EqualTo(new[] { $"{open}:open", $"{open + 1}:after" }), "the transaction's records are not skipped");
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

    [TestCase(AutoOffsetReset.Earliest)]
    [TestCase(AutoOffsetReset.Latest)]
    public async Task A_waiting_loop_is_woken_by_retention_and_resets_its_position(AutoOffsetReset reset)
    {
        using var dir = new TempDirectory();
        var logs = new ListLoggerFactory();
        using LogStore store = OpenStore(dir, logs);
        LogPartition p = store.GetPartition("t", 0);
        await using Producer tx = await PlainThenOpenTransactionThenMoreAsync(store, p);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g", AutoOffsetReset = reset });
        consumer.Assign(T0);
        consumer.SeekToBeginning(T0);
        using var cts = new CancellationTokenSource();
        IAsyncEnumerator<ConsumeResult> loop = consumer.ConsumeAsync(cts.Token).GetAsyncEnumerator(); // disposed only once it is not waiting
        Assert.That(await loop.MoveNextAsync(), Is.True);
        Assert.That(loop.Current.Offset, Is.Zero);
        ValueTask<bool> next = loop.MoveNextAsync();
        Assert.That(next.IsCompleted, Is.False, "precondition: the loop waits at the open transaction");

        long start = DeleteTheTransactionsFirstRecord(store, p);

        // The reset is the only thing the loop can do now (the transaction is still open): wait for its event.
        Task<Logged> resetLogged = logs.WhenLogged(ConsumerResetEvent);
        Assert.That(await Task.WhenAny(resetLogged, Task.Delay(Tx.Timeout)), Is.SameAs(resetLogged), "retention moved the log start past the loop's position, and the loop did not reset it");
        Logged entry = await resetLogged;
        Assert.That(entry.Fields["Group"], Is.EqualTo("g"));
        Assert.That(entry.Fields["Offset"], Is.EqualTo(1L));
        Assert.That(entry.Fields["NewOffset"], Is.EqualTo(start));
        Assert.That(entry.Fields["Policy"], Is.EqualTo(reset.ToString()));
        Assert.That(next.IsCompleted, Is.False, "the transaction is open: nothing to return yet");

        await tx.CommitTransactionAsync();
        Task<bool> record = next.AsTask();
        Assert.That(await Task.WhenAny(record, Task.Delay(Tx.Timeout)), Is.SameAs(record), "the commit did not wake the loop");
        Assert.That(await record, Is.True);
        Assert.That(loop.Current.Offset, Is.EqualTo(start), "goes on at the new log start");
        Assert.That(logs.WithId(ConsumerResetEvent), Has.Count.EqualTo(1));
        await loop.DisposeAsync();
    }
}
