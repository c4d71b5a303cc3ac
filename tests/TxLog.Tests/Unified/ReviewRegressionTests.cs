using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>Regressions for the problems a review of the commit and visibility code found.</summary>
public class ReviewRegressionTests
{
    [Test]
    public async Task InitTransactions_during_a_commit_is_refused_and_the_commit_completes_as_one()
    {
        using var dir = new TempDirectory();
        Exception? initError = null;
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
            TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            await using Producer old = await TransactionalAsync(store, "tid");
            StoreTransaction tx = store.BeginTransaction(old);
            map.Put(tx.Maps, 1, 42);
            await tx.ProduceAsync(new TopicPartition("a", 0), Msg("x"));
            await tx.ProduceAsync(new TopicPartition("b", 0), Msg("y"));
            store.Coordinator.StepHook = step =>
            {
                if (step == "decided")
                {
                    store.Coordinator.StepHook = null;
                    try
                    {
                        Producer second = store.CreateProducerAsync(new ProducerOptions { TransactionalId = "tid" }).AsTask().GetAwaiter().GetResult();
                        second.InitTransactionsAsync().GetAwaiter().GetResult();
                    }
                    catch (Exception e)
                    {
                        initError = e;
                    }
                }
            };
            await tx.CommitAsync();
            Assert.That(initError, Is.InstanceOf<InvalidTransactionStateException>(), "a second instance may not finish a transaction being committed");
            using (MvccTransaction r = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                Assert.That(map.Get(r, 1, -1), Is.EqualTo(42));
            }

            Assert.That(SpinWait.SpinUntil(() => Values(store.GetPartition("b", 0), IsolationLevel.ReadCommitted).Count == 1, TxLog.Tests.Transactions.Tx.Timeout), Is.True);
            Assert.That(Values(store.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "x" }));
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        TransactionEngine e2 = reopened.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        TransactionalMap<int, long> m2 = e2.OpenMap("m", Serializers.Int32, Serializers.Int64);
        using MvccTransaction check = e2.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(m2.Get(check, 1, -1), Is.EqualTo(42));
    }

    [Test]
    public async Task In_periodic_mode_a_multi_partition_commit_is_visible_on_all_or_none_of_its_partitions()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options(DurabilityMode.Periodic);
        options.FlushInterval = TimeSpan.FromHours(1);
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("a");
        store.CreateTopic("b");
        await using Producer p = await TransactionalAsync(store, "t");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("x"));
        await p.ProduceAsync(new TopicPartition("b", 0), Msg("y"));
        await p.CommitTransactionAsync();
        store.GetPartition("a", 0).Log.Sync(); // as the periodic loop would, one partition at a time
        List<string> a = Values(store.GetPartition("a", 0), IsolationLevel.ReadCommitted);
        List<string> b = Values(store.GetPartition("b", 0), IsolationLevel.ReadCommitted);
        Assert.That(a.Count, Is.EqualTo(b.Count), $"a=[{string.Join(",", a)}] b=[{string.Join(",", b)}]");
    }
}

public sealed class MarkerFailureTests : FaultFixture
{
    [Test]
    public async Task A_marker_that_cannot_be_written_after_the_decision_does_not_freeze_healthy_partitions()
    {
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = Fs;
        options.PreallocateBytes = 0;
        Fs.Targets = path => Path.GetFileName(Path.GetDirectoryName(path)) == "a-0" && path.EndsWith(".log", StringComparison.Ordinal);
        using (LogStore store = LogStore.Open(Dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            store.CreateTopic("c");
            await using Producer p1 = await TransactionalAsync(store, "t1");
            p1.BeginTransaction();
            await p1.ProduceAsync(new TopicPartition("b", 0), Msg("b1"));
            await p1.ProduceAsync(new TopicPartition("a", 0), Msg("a1"));
            store.Coordinator.StepHook = s =>
            {
                if (s == "decided")
                {
                    store.Coordinator.StepHook = null;
                    Fs.FailWrite();
                }
            };
            await p1.CommitTransactionAsync(); // the decision is durable: the commit stands

            await using Producer p2 = await TransactionalAsync(store, "t2");
            p2.BeginTransaction();
            await p2.ProduceAsync(new TopicPartition("b", 0), Msg("b2"));
            await p2.ProduceAsync(new TopicPartition("c", 0), Msg("c2"));
            await p2.CommitTransactionAsync();
            LogPartition b = store.GetPartition("b", 0);
            Assert.That(SpinWait.SpinUntil(() => Values(b, IsolationLevel.ReadCommitted).Contains("b2"), TxLog.Tests.Transactions.Tx.Timeout), Is.True, "the healthy partition b keeps going");
        }

        // After reopening, recovery writes the missing marker: the first commit is whole.
        using LogStore reopened = LogStore.Open(Dir.Path, Options());
        Assert.That(Values(reopened.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "a1" }));
        Assert.That(Values(reopened.GetPartition("b", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1", "b2" }));
    }
}
