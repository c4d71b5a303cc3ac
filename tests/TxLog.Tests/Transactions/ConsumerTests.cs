using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class ConsumerTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition T1 = new("t", 1);

    private static List<string> Drain(Consumer consumer)
    {
        var values = new List<string>();
        while (consumer.Consume() is { } r)
        {
            values.Add($"{r.TopicPartition.Partition}:{r.Offset}:{Text(r.Value)}");
        }

        return values;
    }

    [Test]
    public void Subscribe_reads_every_partition_and_seek_moves_the_position()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 2);
        for (int i = 0; i < 3; i++)
        {
            store.GetPartition("t", 0).Append(new TxLog.Records.Message(Bytes($"a{i}")) { Timestamp = 1000 + i });
            store.GetPartition("t", 1).Append(new TxLog.Records.Message(Bytes($"b{i}")) { Timestamp = 2000 + i });
        }

        using Consumer consumer = store.CreateConsumer();
        consumer.Subscribe("t");
        Assert.That(consumer.Assignment, Is.EquivalentTo(new[] { T0, T1 }));
        Assert.That(Drain(consumer), Is.EquivalentTo(new[] { "0:0:a0", "0:1:a1", "0:2:a2", "1:0:b0", "1:1:b1", "1:2:b2" }));
        Assert.That(consumer.Position(T0), Is.EqualTo(3));

        consumer.Seek(T0, 1);
        Assert.That(Drain(consumer), Is.EqualTo(new[] { "0:1:a1", "0:2:a2" }));
        consumer.SeekToBeginning(T1);
        Assert.That(Drain(consumer), Has.Count.EqualTo(3));
        consumer.SeekToTimestamp(T1, 2001);
        Assert.That(Drain(consumer), Is.EqualTo(new[] { "1:1:b1", "1:2:b2" }));
        consumer.SeekToEnd(T0);
        Assert.That(Drain(consumer), Is.Empty);
        Assert.Throws<OffsetOutOfRangeException>(() => consumer.Seek(T0, 4));
        Assert.Throws<InvalidOperationException>(() => consumer.Seek(new TopicPartition("t", 5), 0));
    }

    [Test]
    public async Task ConsumeAsync_waits_for_new_data_and_wakes_when_it_arrives()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t", 2);
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0, T1);
        using var cts = new CancellationTokenSource(Tx.Timeout);
        var received = new List<string>();
        Task reading = Task.Run(async () =>
        {
            await foreach (ConsumeResult r in consumer.ConsumeAsync(cts.Token))
            {
                lock (received)
                {
                    received.Add(Text(r.Value));
                }

                if (received.Count == 4)
                {
                    return;
                }
            }
        });

        await Task.Delay(50);
        Assert.That(reading.IsCompleted, Is.False, "nothing to read yet: the loop waits");
        for (int i = 0; i < 4; i++)
        {
            await store.GetPartition("t", i % 2).AppendAsync(Msg($"v{i}"));
        }

        await reading.WaitAsync(Tx.Timeout);
        Assert.That(received, Is.EquivalentTo(new[] { "v0", "v1", "v2", "v3" }));
    }

    [Test]
    public void ConsumeAsync_honours_cancellation()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () =>
        {
            await foreach (ConsumeResult _ in consumer.ConsumeAsync(cts.Token))
            {
            }
        });
    }

    [Test]
    public async Task A_read_committed_consumer_wakes_when_a_transaction_commits()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t");
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("in-txn"));
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        consumer.Assign(T0);
        using var cts = new CancellationTokenSource(Tx.Timeout);
        Task<ConsumeResult> first = Task.Run(async () =>
        {
            await foreach (ConsumeResult r in consumer.ConsumeAsync(cts.Token))
            {
                return r;
            }

            throw new InvalidOperationException("stream ended");
        });
        await Task.Delay(50);
        Assert.That(first.IsCompleted, Is.False, "the open transaction is invisible");
        await producer.CommitTransactionAsync();
        ConsumeResult result = await first.WaitAsync(Tx.Timeout);
        Assert.That(Text(result.Value), Is.EqualTo("in-txn"));
    }

    [Test]
    public async Task Committed_offsets_survive_reopen_and_set_the_start_position()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("t");
            for (int i = 0; i < 5; i++)
            {
                store.GetPartition("t", 0).Append(Msg($"v{i}"));
            }

            await store.GetPartition("t", 0).FlushAsync(); // consumers see durable records only
            using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
            consumer.Assign(T0);
            Assert.That(consumer.Committed(T0), Is.Null);
            consumer.Consume();
            consumer.Consume();
            await consumer.Commit();
            Assert.That(consumer.Committed(T0), Is.EqualTo(2));
        }

        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
            consumer.Assign(T0);
            Assert.That(consumer.Position(T0), Is.EqualTo(2));
            Assert.That(Text(consumer.Consume()!.Value), Is.EqualTo("v2"));

            using Consumer other = store.CreateConsumer(new ConsumerOptions { GroupId = "other", AutoOffsetReset = AutoOffsetReset.Latest });
            other.Assign(T0);
            Assert.That(other.Position(T0), Is.EqualTo(5));
            Assert.Throws<InvalidOperationException>(() => store.CreateConsumer().Committed(T0), "no group");
        }
    }

    [Test]
    public async Task Watermarks_report_HW_LSO_and_the_isolation_end_separately()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("plain"));
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("open"));
        store.GetPartition("t", 0).Append(Msg("after"));
        using Consumer rc = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        using Consumer ru = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadUncommitted });
        Assert.That(rc.GetWatermarks(T0), Is.EqualTo(new Watermarks(0, 3, 1, 1)));
        Assert.That(ru.GetWatermarks(T0), Is.EqualTo(new Watermarks(0, 3, 1, 3)));
        await producer.AbortTransactionAsync();
    }
}
