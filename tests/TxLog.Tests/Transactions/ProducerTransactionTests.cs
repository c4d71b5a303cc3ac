using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class ProducerTransactionTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition T1 = new("t", 1);
    private static readonly TopicPartition U0 = new("u", 0);

    private static LogStore OpenWithTopics(TempDirectory dir, DurabilityMode mode = DurabilityMode.None, TimeProvider? clock = null)
    {
        LogStore store = LogStore.Open(dir.Path, Options(mode, clock));
        if (!store.TopicExists("t"))
        {
            store.CreateTopic("t", 2);
            store.CreateTopic("u", 1);
        }

        return store;
    }

    [Test]
    public async Task Misuse_throws_and_changes_nothing()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        Producer p = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "tx" });

        Assert.Throws<InvalidTransactionStateException>(p.BeginTransaction, "begin before InitTransactions");
        Assert.ThrowsAsync<InvalidTransactionStateException>(async () => await p.ProduceAsync(T0, Msg("x")), "produce before init");
        await p.InitTransactionsAsync();
        Assert.ThrowsAsync<InvalidTransactionStateException>(async () => await p.InitTransactionsAsync(), "init twice");
        Assert.ThrowsAsync<InvalidTransactionStateException>(async () => await p.ProduceAsync(T0, Msg("x")), "produce outside a transaction");
        Assert.ThrowsAsync<InvalidTransactionStateException>(() => p.CommitTransactionAsync(), "commit without begin");
        Assert.ThrowsAsync<InvalidTransactionStateException>(() => p.AbortTransactionAsync(), "abort without begin");
        p.BeginTransaction();
        Assert.Throws<InvalidTransactionStateException>(p.BeginTransaction, "begin twice");
        Assert.That(store.GetPartition("t", 0).LogEndOffset, Is.Zero, "nothing was written by the failed calls");
        await p.ProduceAsync(T0, Msg("ok"));
        await p.CommitTransactionAsync();
        await p.DisposeAsync();
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await p.ProduceAsync(T0, Msg("x")));
        Assert.Throws<ObjectDisposedException>(p.BeginTransaction);

        Producer idempotent = await store.CreateProducerAsync();
        Assert.Throws<InvalidTransactionStateException>(idempotent.BeginTransaction);
        Assert.ThrowsAsync<InvalidTransactionStateException>(() => idempotent.InitTransactionsAsync());
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "ok" }));
    }

    [Test]
    public async Task A_transaction_across_partitions_commits_as_a_unit()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir, DurabilityMode.GroupCommit);
        await using Producer p = await TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("a"));
        await p.ProduceAsync(T1, Msg("b"));
        await p.ProduceAsync(U0, Msg("c"));
        foreach (TopicPartition tp in new[] { T0, T1, U0 })
        {
            LogPartition part = store.GetPartition(tp.Topic, tp.Partition);
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.Empty, $"{tp}: nothing before commit");
            Assert.That(part.LastStableOffset, Is.Zero);
        }

        TransactionDescription open = store.ListTransactions().Single(t => t.TransactionalId == "tx");
        Assert.That(open.State, Is.EqualTo(TransactionState.Ongoing));
        Assert.That(open.Partitions, Is.EquivalentTo(new[] { T0, T1, U0 }));

        await p.CommitTransactionAsync();
        Assert.That(store.ListTransactions().Single().State, Is.EqualTo(TransactionState.CompleteCommit));
        // Durable at commit: every data batch is below its partition's HW.
        Assert.That(store.GetPartition("t", 0).HighWatermark, Is.GreaterThanOrEqualTo(1));
        foreach ((TopicPartition tp, string v) in new[] { (T0, "a"), (T1, "b"), (U0, "c") })
        {
            LogPartition part = store.GetPartition(tp.Topic, tp.Partition);
            Assert.That(SpinWait.SpinUntil(() => part.LastStableOffset == 2, Tx.Timeout), Is.True, $"{tp}: marker made durable");
            Assert.That(Values(part, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { v }));
        }
    }

    [Test]
    public async Task An_aborted_transaction_is_invisible_to_read_committed_and_visible_to_read_uncommitted()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        await using Producer p = await TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("gone"));
        await p.ProduceAsync(U0, Msg("gone too"));
        await p.AbortTransactionAsync();
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("kept"));
        await p.CommitTransactionAsync();

        LogPartition t0 = store.GetPartition("t", 0);
        Assert.That(Values(t0, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "kept" }));
        Assert.That(Values(t0, IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "gone", "kept" }));
        Assert.That(Values(store.GetPartition("u", 0), IsolationLevel.ReadCommitted), Is.Empty);
        Assert.That(t0.LastStableOffset, Is.EqualTo(t0.HighWatermark));
    }

    [Test]
    public async Task InitTransactions_fences_the_previous_producer_everywhere_and_aborts_its_transaction()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        Producer zombie = await TransactionalAsync(store, "tx");
        zombie.BeginTransaction();
        await zombie.ProduceAsync(T0, Msg("zombie"));

        Producer fresh = await TransactionalAsync(store, "tx");
        Assert.That(fresh.ProducerId, Is.EqualTo(zombie.ProducerId));
        Assert.That(fresh.Epoch, Is.GreaterThan(zombie.Epoch), "bumped (twice here: once to fence and abort the open transaction, once for the new producer)");

        // The zombie's open transaction was aborted; the LSO moved past it.
        LogPartition t0 = store.GetPartition("t", 0);
        Assert.That(t0.LastStableOffset, Is.EqualTo(t0.HighWatermark));
        Assert.That(Values(t0, IsolationLevel.ReadCommitted), Is.Empty);

        // Every zombie operation is fenced: on a partition it wrote to, on one it never touched, at commit.
        Assert.ThrowsAsync<ProducerFencedException>(async () => await zombie.ProduceAsync(T0, Msg("late")));
        Assert.ThrowsAsync<ProducerFencedException>(async () => await zombie.ProduceAsync(T1, Msg("late")));
        Assert.ThrowsAsync<ProducerFencedException>(() => zombie.CommitTransactionAsync());
        Assert.Throws<ProducerFencedException>(() => AppendRaw(store, store.GetPartition("u", 0), zombie.ProducerId, zombie.Epoch, 0, true, "raw zombie write"));
        Assert.That(store.GetPartition("t", 1).LogEndOffset, Is.Zero);

        fresh.BeginTransaction();
        await fresh.ProduceAsync(T0, Msg("fresh"));
        await fresh.CommitTransactionAsync();
        Assert.That(Values(t0, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "fresh" }));
        await fresh.DisposeAsync();
        await zombie.DisposeAsync();
    }

    [Test]
    public async Task A_timed_out_transaction_is_aborted_fenced_and_its_commit_fails()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), manualTimestamp: true);
        using LogStore store = OpenWithTopics(dir, DurabilityMode.None, clock);
        Producer p = await TransactionalAsync(store, "slow", timeout: TimeSpan.FromSeconds(10));
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("late"));
        await p.ProduceAsync(U0, Msg("late"));
        LogPartition t0 = store.GetPartition("t", 0);
        Assert.That(t0.LastStableOffset, Is.Zero, "the open transaction holds the LSO");

        clock.Advance(TimeSpan.FromSeconds(9));
        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.Zero, "not yet expired");
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.EqualTo(1));

        Assert.That(t0.LastStableOffset, Is.EqualTo(t0.HighWatermark), "the LSO advanced past the aborted transaction");
        TransactionTimedOutException e = Assert.ThrowsAsync<TransactionTimedOutException>(() => p.CommitTransactionAsync())!;
        Assert.That(e.TransactionalId, Is.EqualTo("slow"));
        Assert.That(Values(t0, IsolationLevel.ReadCommitted), Is.Empty, "never reported as committed, never visible");
        Assert.ThrowsAsync<ProducerFencedException>(async () => await p.ProduceAsync(T0, Msg("more")));
        await p.DisposeAsync();
    }

    [Test]
    public async Task The_timeout_runs_on_the_monotonic_clock_so_wall_clock_steps_neither_abort_nor_spare()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), manualTimestamp: true);
        using LogStore store = OpenWithTopics(dir, DurabilityMode.None, clock);
        await using Producer p = await TransactionalAsync(store, "stepped", timeout: TimeSpan.FromSeconds(10));
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("x"));

        clock.StepWallClock(TimeSpan.FromHours(1)); // NTP jumps forward: the transaction is 0 s old
        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.Zero, "a forward step aborted nothing");
        clock.StepWallClock(TimeSpan.FromHours(-2)); // and back, to before the transaction began
        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.EqualTo(1), "a backward step did not spare it");
        Assert.ThrowsAsync<TransactionTimedOutException>(() => p.CommitTransactionAsync());
    }

    [Test]
    public async Task The_sweep_does_not_abort_a_new_transaction_that_began_at_the_expired_ones_wall_clock_time()
    {
        // Regression: between finding a transaction expired and aborting it, the sweep recognised "still
        // the same transaction" by its wall-clock start. After the expired one committed and the clock
        // stepped back, a new transaction could begin at the same millisecond and was aborted instead.
        using var dir = new TempDirectory();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), manualTimestamp: true);
        using LogStore store = OpenWithTopics(dir, DurabilityMode.None, clock);
        await using Producer p = await TransactionalAsync(store, "stepped", timeout: TimeSpan.FromSeconds(10));
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("first"));
        clock.Advance(TimeSpan.FromSeconds(11)); // expired

        store.Coordinator.StepHook = step =>
        {
            if (step == "expired")
            {
                // Between the sweep's two looks: the expired transaction commits after all, the wall
                // clock steps back to its start, and the producer begins the next one.
                store.Coordinator.StepHook = null;
                p.CommitTransactionAsync().GetAwaiter().GetResult();
                clock.StepWallClock(TimeSpan.FromSeconds(-11));
                p.BeginTransaction();
                p.ProduceAsync(T0, Msg("second")).AsTask().GetAwaiter().GetResult();
            }
        };

        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.Zero, "the expired transaction was gone; the new one is 0 s old");
        await p.CommitTransactionAsync();
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "first", "second" }));
    }

    [Test]
    public async Task The_background_timer_aborts_an_expired_transaction_on_its_own()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options();
        options.TransactionTimeoutCheckInterval = TimeSpan.FromMilliseconds(20);
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        Producer p = await TransactionalAsync(store, "forgotten", timeout: TimeSpan.FromMilliseconds(100));
        p.BeginTransaction();
        await p.ProduceAsync(T0, Msg("x"));
        LogPartition t0 = store.GetPartition("t", 0);
        Assert.That(t0.LastStableOffset, Is.Zero);
        Assert.That(SpinWait.SpinUntil(() => t0.LastStableOffset == t0.HighWatermark, Tx.Timeout), Is.True, "the LSO advanced without anyone calling the coordinator");
        // The LSO moves when the markers are written, the state record right after: wait for it.
        Assert.That(SpinWait.SpinUntil(() => store.ListTransactions().Single().State == TransactionState.CompleteAbort, Tx.Timeout), Is.True);
        Assert.ThrowsAsync<TransactionTimedOutException>(() => p.CommitTransactionAsync());
    }

    [Test]
    public async Task Offsets_sent_to_a_transaction_become_visible_only_when_it_commits()
    {
        using var dir = new TempDirectory();
        using (LogStore store = OpenWithTopics(dir))
        {
            await using Producer p = await TransactionalAsync(store, "tx");
            p.BeginTransaction();
            await p.ProduceAsync(U0, Msg("result-1"));
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 5)], "g");
            Assert.That(store.Groups.Committed("g", T0), Is.Null, "pending until the commit");
            await p.CommitTransactionAsync();
            Assert.That(store.Groups.Committed("g", T0), Is.EqualTo(5));

            p.BeginTransaction();
            await p.ProduceAsync(U0, Msg("result-2"));
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 9)], "g");
            await p.AbortTransactionAsync();
            Assert.That(store.Groups.Committed("g", T0), Is.EqualTo(5), "the aborted offsets never applied");
        }

        using (LogStore store = OpenWithTopics(dir))
        {
            Assert.That(store.Groups.Committed("g", T0), Is.EqualTo(5), "replayed from __consumer_offsets");
        }
    }

    [Test]
    public async Task Several_producers_interleaving_commits_and_aborts_match_a_model()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        var random = new Random(12345);
        var producers = new Producer[4];
        for (int i = 0; i < producers.Length; i++)
        {
            producers[i] = await TransactionalAsync(store, $"p{i}");
        }

        var expected = new Dictionary<TopicPartition, List<string>> { [T0] = new(), [T1] = new(), [U0] = new() };
        var pending = new List<(TopicPartition, string)>[producers.Length];
        TopicPartition[] partitions = [T0, T1, U0];
        for (int step = 0; step < 400; step++)
        {
            int i = random.Next(producers.Length);
            Producer p = producers[i];
            if (!p.InTransaction)
            {
                p.BeginTransaction();
                pending[i] = new();
            }

            int action = random.Next(10);
            if (action < 7)
            {
                TopicPartition tp = partitions[random.Next(partitions.Length)];
                string value = $"p{i}-s{step}";
                await p.ProduceAsync(tp, Msg(value));
                pending[i].Add((tp, value));
            }
            else if (action < 9)
            {
                await p.CommitTransactionAsync();
                foreach ((TopicPartition tp, string value) in pending[i])
                {
                    expected[tp].Add(value);
                }
            }
            else
            {
                await p.AbortTransactionAsync();
            }

            if (step % 50 == 0)
            {
                // Plain records interleave too.
                store.GetPartition("t", 0).Append(Msg($"plain-{step}"));
                expected[T0].Add($"plain-{step}");
            }
        }

        foreach (Producer p in producers)
        {
            if (p.InTransaction)
            {
                await p.AbortTransactionAsync();
            }
        }

        foreach (TopicPartition tp in partitions)
        {
            // Read-committed order is log order; the model records commit order, so compare as sets
            // and check that each producer's records keep their order.
            List<string> actual = Values(store.GetPartition(tp.Topic, tp.Partition), IsolationLevel.ReadCommitted);
            Assert.That(actual, Is.EquivalentTo(expected[tp]), tp.ToString());
            for (int i = 0; i < producers.Length; i++)
            {
                string prefix = $"p{i}-";
                Assert.That(actual.Where(v => v.StartsWith(prefix)), Is.EqualTo(expected[tp].Where(v => v.StartsWith(prefix))), $"{tp} order of p{i}");
            }
        }
    }
}
