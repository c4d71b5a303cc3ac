using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>
/// Lock order between a unified commit and the end of a producer transaction. Ending a producer's
/// transaction holds the producer's gate while the coordinator releases visibility holds, and the
/// release runs the map side of every unified transaction it makes visible (which takes the MVCC
/// engine's commit lock). So a unified commit must never wait for its producer's gate while it holds
/// the commit lock: with another caller ending the producer's transaction at that moment (a documented
/// interleaving, see docs/transactions.md) and a held unified transaction to release, the three formed
/// a cycle (commit lock → gate → visibility lock → commit lock) and both callers hung forever.
/// </summary>
public class UnifiedLockOrderTests
{
    private static readonly TimeSpan DeadlockTimeout = TimeSpan.FromSeconds(10);

    [TestCase("commit")]
    [TestCase("abort")]
    [TestCase("dispose")]
    public async Task Ending_a_producer_transaction_while_its_unified_commit_prepares_does_not_deadlock(string how)
    {
        using var dir = new TempDirectory();
        // Not disposed by `using`: after a deadlock the close would wait forever for the visibility lock.
        LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None));
        store.CreateTopic("t");
        var t0 = new TopicPartition("t", 0);
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        Producer q = await TransactionalAsync(store, "q");
        Producer px = await TransactionalAsync(store, "x");

        // T: the unified transaction whose commit races the other caller; its record opens q's
        // transaction on t-0 before X's record there.
        StoreTransaction t = store.BeginTransaction(q);
        map.Put(t.Maps, 1, 10);
        await t.ProduceAsync(t0, Msg("t"));

        // X: a unified transaction over t-0 and the redo, decided and with its markers written, but held
        // invisible behind T's open record: whoever ends q's transaction releases it (and runs its map side).
        StoreTransaction x = store.BeginTransaction(px);
        map.Put(x.Maps, 2, 20);
        await x.ProduceAsync(t0, Msg("x"));
        Task xCommit = x.CommitAsync();
        DateTime deadline = DateTime.UtcNow + DeadlockTimeout;
        while (px.InTransaction && !xCommit.IsCompleted && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1);
        }

        Assert.That(px.InTransaction, Is.False, "X's log side is decided and its markers written");
        Assert.That(xCommit.IsCompleted, Is.False, "X is held invisible behind T's open record on t-0");

        // The other caller of q holds q's gate when the coordinator starts ending its transaction; there
        // it lets T's commit run up to the point where it waits for q's gate, then goes on.
        var waitsForGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tCommitStarted = new TaskCompletionSource<Task>(TaskCreationOptions.RunContinuationsAsynchronously);
        q.StepHook = step =>
        {
            if (step == "unified:gate")
            {
                waitsForGate.TrySetResult();
            }
        };
        int hooked = 0;
        store.Coordinator.StepHook = step =>
        {
            if (step == "prepare" && Interlocked.Exchange(ref hooked, 1) == 0)
            {
                tCommitStarted.SetResult(Task.Run(() => t.CommitAsync()));
                waitsForGate.Task.Wait(DeadlockTimeout);
            }
        };

        Task racer = Task.Run(async () =>
        {
            switch (how)
            {
                case "commit":
                    await q.CommitTransactionAsync();
                    break;
                case "abort":
                    await q.AbortTransactionAsync();
                    break;
                default:
                    await q.DisposeAsync();
                    break;
            }
        });

        Task tCommit;
        try
        {
            await racer.WaitAsync(DeadlockTimeout);
            tCommit = await tCommitStarted.Task.WaitAsync(DeadlockTimeout);
            await Task.WhenAny(tCommit).WaitAsync(DeadlockTimeout);
            await xCommit.WaitAsync(DeadlockTimeout);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"deadlock: the {how} of q's transaction and T's unified commit did not finish within {DeadlockTimeout.TotalSeconds} s");
            return;
        }

        store.Coordinator.StepHook = null;
        q.StepHook = null;
        Assert.That(waitsForGate.Task.IsCompleted, Is.True, "T's commit reached q's gate while the other caller held it");

        // T lost the race: its producer transaction was ended by the other caller, so its commit fails
        // clearly and changes no map.
        Exception? failure = tCommit.Exception?.InnerException;
        if (how == "dispose")
        {
            Assert.That(failure, Is.InstanceOf<ObjectDisposedException>());
        }
        else
        {
            Assert.That(failure, Is.InstanceOf<InvalidTransactionStateException>());
        }

        Assert.That(t.Maps.IsActive || t.Maps.IsCommitted, Is.False, "T's map side is rolled back");
        using (MvccTransaction read = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            Assert.That(map.Get(read, 1, -1), Is.EqualTo(-1), "T's map write never took effect");
            Assert.That(map.Get(read, 2, -1), Is.EqualTo(20), "X is visible");
        }

        LogPartition partition = store.GetPartition("t", 0);
        Assert.That(Values(partition, Consuming.IsolationLevel.ReadCommitted),
            Is.EqualTo(how == "commit" ? new[] { "t", "x" } : new[] { "x" }));
        Assert.That(store.GetPartition(TransactionEngine.RedoTopic, 0).ProducerState.FirstUnstableOffset, Is.EqualTo(long.MaxValue),
            "no redo batch is left in an open transaction");

        await px.DisposeAsync();
        await q.DisposeAsync();
        store.Dispose();
    }

    [Test]
    public async Task A_caller_ending_the_producer_transaction_between_the_redo_and_the_decision_waits_and_recovery_agrees()
    {
        // Regression: the redo was appended under its own holds of the gate, so another caller could commit
        // the producer's transaction between the redo and the unified decision: the redo (and T's record)
        // were committed while T's commit failed and rolled its maps back in memory, and the next open
        // replayed the redo, bringing back a write whose commit had failed.
        using var dir = new TempDirectory();
        var t0 = new TopicPartition("t", 0);
        var racerReachedCoordinator = new ManualResetEventSlim();
        Task? racer = null;
        Exception? commitFailure = null;
        int commitThread = -1;
        LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        try
        {
            store.CreateTopic("t");
            TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
            TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            await using Producer q = await TransactionalAsync(store, "q");
            StoreTransaction t = store.BeginTransaction(q);
            map.Put(t.Maps, 1, 10);
            await t.ProduceAsync(t0, Msg("t"));

            store.Coordinator.StepHook = step =>
            {
                if (step == "prepare" && racer is not null && !racerReachedCoordinator.IsSet && Environment.CurrentManagedThreadId != commitThread)
                {
                    racerReachedCoordinator.Set();
                }
            };
            q.StepHook = step =>
            {
                if (step == "unified:prepared")
                {
                    commitThread = Environment.CurrentManagedThreadId;
                    racer = Task.Run(() => q.CommitTransactionAsync());
                    // The racer must wait for the gate: it must not reach the coordinator now (bounded wait).
                    racerReachedCoordinator.Wait(TimeSpan.FromMilliseconds(300));
                }
            };

            try
            {
                await t.CommitAsync().WaitAsync(DeadlockTimeout);
            }
            catch (TxLogException e)
            {
                commitFailure = e;
            }

            q.StepHook = null;
            Assert.That(racer, Is.Not.Null);
            Assert.ThrowsAsync<InvalidTransactionStateException>(async () => await racer!.WaitAsync(DeadlockTimeout),
                "the other caller found the transaction already committed");
            Assert.That(commitFailure, Is.Null, "the unified commit kept its transaction to itself");
            Assert.That(racerReachedCoordinator.IsSet, Is.False, "the other caller did not end the transaction between the redo and the decision");
        }
        finally
        {
            store.Coordinator.StepHook = null;
            store.Dispose();
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        TransactionEngine again = reopened.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
        TransactionalMap<int, long> m2 = again.OpenMap("m", Serializers.Int32, Serializers.Int64);
        using MvccTransaction read = again.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(m2.Get(read, 1, -1), Is.EqualTo(10), "recovery agrees with the acknowledged commit");
        Assert.That(Values(reopened.GetPartition("t", 0), Consuming.IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "t" }));
    }
}
