using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// <c>__transaction_state</c> grows by a few records per transaction; a running store rewrites it when
/// history dominates (not only at the next open), while commits go on, and loses nothing by it.
/// </summary>
public class LiveRestateTests
{
    private static readonly TopicPartition A = new("a", 0);
    private static readonly TopicPartition B = new("b", 0);

    [Test]
    public async Task The_timer_keeps_the_coordinator_log_bounded_while_the_store_runs()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.SegmentBytes = 4096;
        options.TransactionTimeoutCheckInterval = TimeSpan.FromMilliseconds(20);
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("a");
        store.CreateTopic("b");
        store.Coordinator.LiveRestateSlack = 50;
        await using Producer p = await TransactionalAsync(store, "t");
        LogPartition state = store.GetPartition(TxLog.Coordination.TransactionCoordinator.TopicName, 0);
        long maxHistory = 0;
        for (int i = 0; i < 400; i++)
        {
            p.BeginTransaction();
            await p.ProduceAsync(A, Msg("a" + i));
            await p.ProduceAsync(B, Msg("b" + i));
            await p.CommitTransactionAsync();
            maxHistory = Math.Max(maxHistory, state.LogEndOffset - state.LogStartOffset);
            if (i % 50 == 49)
            {
                await Task.Delay(100); // timer ticks
            }
        }

        Assert.That(state.LogStartOffset, Is.GreaterThan(0), "history was dropped while the store ran");
        Assert.That(maxHistory, Is.LessThan(400), $"the log held {maxHistory} records at most (400 transactions write 800)");
    }

    [Test]
    public async Task Restating_while_writers_commit_and_abort_loses_nothing_across_a_reopen()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.SegmentBytes = 4096;
        const int Writers = 4;
        var committed = new List<string>[Writers];
        var ids = new (long Pid, short Epoch)[Writers];
        int restates = 0;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            store.Coordinator.LiveRestateSlack = 5;
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var writers = new List<Task>();
            for (int w = 0; w < Writers; w++)
            {
                int me = w;
                committed[me] = new List<string>();
                writers.Add(Task.Run(async () =>
                {
                    await using Producer p = await TransactionalAsync(store, "w" + me);
                    ids[me] = (p.ProducerId, p.Epoch);
                    for (int i = 0; !stop.IsCancellationRequested; i++)
                    {
                        string value = $"w{me}-{i}";
                        p.BeginTransaction();
                        await p.ProduceAsync(A, Msg(value));
                        await p.ProduceAsync(B, Msg(value));
                        await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(new TopicPartition("in", me), i + 1)], "g");
                        if (i % 3 == 2)
                        {
                            await p.AbortTransactionAsync();
                        }
                        else
                        {
                            await p.CommitTransactionAsync();
                            committed[me].Add(value);
                        }
                    }
                }));
            }

            Task restater = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (store.Coordinator.RestateIfGrown())
                    {
                        Interlocked.Increment(ref restates);
                    }

                    await Task.Delay(1);
                }
            });
            await Task.WhenAll(writers);
            await restater;
        }

        Assert.That(restates, Is.GreaterThan(2), "restated while the writers ran");
        using LogStore reopened = LogStore.Open(dir.Path, options);
        var expected = new List<string>();
        foreach (List<string> list in committed)
        {
            expected.AddRange(list);
        }

        foreach (TopicPartition tp in new[] { A, B })
        {
            LogPartition partition = reopened.GetPartition(tp.Topic, tp.Partition);
            Assert.That(partition.LastStableOffset, Is.EqualTo(partition.HighWatermark), $"{tp}: nothing left open");
            Assert.That(Values(partition, IsolationLevel.ReadCommitted), Is.EquivalentTo(expected), $"{tp}: exactly the acknowledged commits");
        }

        using Consumer group = reopened.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        for (int w = 0; w < Writers; w++)
        {
            long? offset = group.Committed(new TopicPartition("in", w));
            Assert.That(offset, Is.Not.Null, $"writer {w}'s committed offsets survive");
            Assert.That(offset!.Value % 3, Is.Not.Zero, $"writer {w}: the offset of a committed transaction, not of an aborted one");
        }

        for (int w = 0; w < Writers; w++)
        {
            await using Producer again = await TransactionalAsync(reopened, "w" + w);
            Assert.That(again.ProducerId, Is.EqualTo(ids[w].Pid), "the id keeps its producer id");
            Assert.That(again.Epoch, Is.GreaterThan(ids[w].Epoch), "and its epoch moves on (the old instance stays fenced)");
        }
    }
}
