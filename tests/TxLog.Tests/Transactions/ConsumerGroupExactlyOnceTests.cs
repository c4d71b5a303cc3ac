using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Consume → produce → send offsets (with the consumer's group metadata) → commit, by members that
/// join and leave the group while they work: every input record reaches the output exactly once.
/// </summary>
public sealed class ConsumerGroupExactlyOnceTests
{
    private const int Partitions = 6, PerPartition = 100;
    private static readonly TopicPartition Out = new("out", 0);

    // onePoll: each batch is one ConsumeBatch poll, metadata taken after it; otherwise a batch is read
    // with several Consume polls (with pauses, so rebalances land mid-batch) and the metadata is taken
    // before its first poll.
    [TestCase(1, false)]
    [TestCase(2, false)]
    [TestCase(3, false)]
    [TestCase(4, true)]
    [TestCase(5, true)]
    public async Task Members_joining_and_leaving_mid_stream_process_every_input_exactly_once(int seed, bool onePoll)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("in", Partitions);
        store.CreateTopic("out", 1);
        for (int i = 0; i < PerPartition; i++)
        {
            for (int p = 0; p < Partitions; p++)
            {
                store.GetPartition("in", p).Append(Msg($"in-{p}-{i}"));
            }
        }

        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int fenced = 0;
        var workers = new List<(CancellationTokenSource Stop, Task Run)>();
        void Start(string id)
        {
            var stop = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            workers.Add((stop, Task.Run(() => WorkAsync(store, id, seed, onePoll, stop.Token, () => Interlocked.Increment(ref fenced)))));
        }

        long Progress()
        {
            long sum = 0;
            for (int p = 0; p < Partitions; p++)
            {
                sum += store.Groups.Committed("eos", new TopicPartition("in", p)) ?? 0;
            }

            return sum;
        }

        async Task UntilAsync(long progress)
        {
            while (Progress() < progress)
            {
                deadline.Token.ThrowIfCancellationRequested();
                await Task.Delay(1);
            }
        }

        Start("a");
        await UntilAsync(60);
        Start("b");
        await UntilAsync(180);
        Start("c");
        await UntilAsync(300);
        workers[1].Stop.Cancel(); // b leaves mid-stream
        await workers[1].Run;
        await UntilAsync(400);
        Start("d");
        await UntilAsync(480);
        workers[0].Stop.Cancel(); // a, the first member, leaves too
        await workers[0].Run;
        await UntilAsync(Partitions * PerPartition);
        foreach ((CancellationTokenSource stop, Task run) in workers)
        {
            stop.Cancel();
            await run;
            stop.Dispose();
        }

        List<string> output = Values(store.GetPartition("out", 0), IsolationLevel.ReadCommitted);
        var expected = new List<string>();
        for (int p = 0; p < Partitions; p++)
        {
            for (int i = 0; i < PerPartition; i++)
            {
                expected.Add($"in-{p}-{i}");
            }
        }

        Assert.That(output, Is.EquivalentTo(expected), $"exactly once ({fenced} transactions fenced by rebalances)");
        TestContext.Progress.WriteLine($"seed {seed}: {fenced} fenced transactions");
    }

    // One member: batches of 1..9 records (whatever it owns), each in one transaction with its offsets.
    // A send refused because a rebalance took a partition mid-batch aborts, and the member goes back to
    // the committed offsets of what it still owns (Kafka's pattern after an abort).
    private static async Task WorkAsync(LogStore store, string id, int seed, bool onePoll, CancellationToken stop, Action onFenced)
    {
        var random = new Random(HashCode.Combine(seed, id));
        await using Producer producer = await TransactionalAsync(store, "eos-" + id);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "eos", Isolation = IsolationLevel.ReadCommitted });
        consumer.Subscribe("in");
        var batch = new List<ConsumeResult>();
        var offsets = new Dictionary<TopicPartition, long>();
        while (!stop.IsCancellationRequested)
        {
            batch.Clear();
            int size = random.Next(1, 10);
            ConsumerGroupMetadata metadata;
            if (onePoll)
            {
                batch.AddRange(consumer.ConsumeBatch(size));
                metadata = consumer.GroupMetadata;
                if (random.Next(3) == 0)
                {
                    await Task.Delay(1, CancellationToken.None); // a rebalance now must not matter: the member polls only after the send
                }
            }
            else
            {
                metadata = consumer.GroupMetadata; // before the batch's first poll
                while (batch.Count < size && consumer.Consume() is { } record)
                {
                    batch.Add(record);
                    if (random.Next(3) == 0)
                    {
                        await Task.Delay(1, CancellationToken.None); // room for a rebalance mid-batch: the next poll may revoke
                    }
                }
            }

            if (batch.Count == 0)
            {
                await Task.Delay(1, CancellationToken.None);
                continue;
            }

            offsets.Clear();
            foreach (ConsumeResult r in batch)
            {
                offsets[r.TopicPartition] = r.Offset + 1;
            }

            producer.BeginTransaction();
            try
            {
                foreach (ConsumeResult r in batch)
                {
                    await producer.ProduceAsync(Out, new Message(r.Value));
                }

                var list = new List<TopicPartitionOffset>(offsets.Count);
                foreach (KeyValuePair<TopicPartition, long> o in offsets)
                {
                    list.Add(new TopicPartitionOffset(o.Key, o.Value));
                }

                await producer.SendOffsetsToTransactionAsync(list, metadata);
                await producer.CommitTransactionAsync();
            }
            catch (CommitFailedException)
            {
                onFenced();
                await producer.AbortTransactionAsync();
                // Back to the committed offsets: this member's previous transaction may have returned
                // before its offsets took effect (Committed() alone could still show older ones).
                await consumer.SeekToCommittedAsync();
            }
        }
    }
}
