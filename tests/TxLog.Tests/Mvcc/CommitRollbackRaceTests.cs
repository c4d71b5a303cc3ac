using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

/// <summary>Rollback of a transaction whose commit is still waiting for its redo fsync, and savepoints rolled back past.</summary>
public class CommitRollbackRaceTests
{
    [Test]
    public async Task Rollback_while_the_commit_waits_for_its_fsync_neither_installs_deletes_nor_breaks_other_locks_or_snapshots()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, FileSystem = fs, PreallocateBytes = 0 });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, LockTimeout = TimeSpan.FromMilliseconds(200) });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        using (MvccTransaction seed = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            map.Put(seed, 1, 10);
            seed.Commit();
        }

        using MvccTransaction longReader = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        Assert.That(map.Get(longReader, 1), Is.EqualTo(10));

        MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        map.Put(tx, 1, 11);
        fs.BlockSyncs();
        Task commit = Task.Run(() => tx.CommitAsync().AsTask());
        Assert.That(fs.WaitForBlockedSync(TimeSpan.FromSeconds(10)), Is.True);

        // The caller gives up on a slow commit (e.g. commit.WaitAsync(timeout) threw) and rolls back:
        // MvccTransaction.Rollback accepts a committing transaction.
        Exception? rollbackError = null;
        try
        {
            Assert.ThrowsAsync<TimeoutException>(() => commit.WaitAsync(TimeSpan.FromMilliseconds(50)));
            tx.Rollback();
        }
        catch (InvalidOperationException e)
        {
            rollbackError = e;
        }

        // If the rollback was accepted, it released the row: another transaction may now lock it.
        MvccTransaction? other = null;
        if (rollbackError is null)
        {
            other = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(other, 1, 99);
        }

        fs.Release();
        Exception? commitError = null;
        try
        {
            await commit;
        }
        catch (Exception e)
        {
            commitError = e;
        }

        TestContext.Out.WriteLine($"rollback: {rollbackError?.Message ?? "accepted"}; commit: {commitError?.GetType().Name ?? "succeeded"}");
        using (MvccTransaction read = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            int seen = map.Get(read, 1, -1);
            TestContext.Out.WriteLine($"after the commit: {seen}, other active {other?.IsActive}");
            Assert.That(seen, Is.EqualTo(11), "the acknowledged commit is visible");
        }

        if (other is not null)
        {
            // The other transaction still holds its lock: a third writer must not get in.
            using MvccTransaction third = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            TestContext.Out.WriteLine($"third sees {map.Get(third, 1, -1)}");
            Assert.Throws<WriteConflictException>(() => map.Put(third, 1, 5), "the other transaction's row lock must still be held");
            other.Rollback();
        }

        // The long reader's snapshot is still registered: GC keeps its version.
        for (int i = 0; i < 3; i++)
        {
            using MvccTransaction w = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(w, 1, 100 + i);
            w.Commit();
        }

        engine.CollectGarbage();
        Assert.That(map.Get(longReader, 1), Is.EqualTo(10), "the long reader's snapshot version was collected");
        Assert.That(commitError is null && rollbackError is not null, Is.True, "a committing transaction must refuse the rollback and its commit complete");
    }

    [Test]
    public void A_savepoint_rolled_back_past_is_refused()
    {
        using var f = new EngineFixture();
        using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
        Savepoint first = tx.SetSavepoint();
        f.Map.Put(tx, 1, 1);
        Savepoint second = tx.SetSavepoint();
        f.Map.Put(tx, 2, 2);
        tx.RollbackToSavepoint(first);
        f.Map.Put(tx, 3, 3);
        f.Map.Put(tx, 4, 4);
        Assert.Throws<ArgumentException>(() => tx.RollbackToSavepoint(second), "XML doc: 'rolled back past' savepoints are refused");
        tx.RollbackToSavepoint(first); // still valid, and again
        Assert.That(f.Map.Get(tx, 3, -1), Is.EqualTo(-1));
        Savepoint third = tx.SetSavepoint();
        f.Map.Put(tx, 5, 5);
        tx.RollbackToSavepoint(third);
        tx.RollbackToSavepoint(first);
    }

    [Test]
    public void A_savepoint_rolled_back_past_is_refused_even_when_a_new_one_sits_at_the_same_undo_position()
    {
        using var f = new EngineFixture();
        using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
        Savepoint first = tx.SetSavepoint();
        f.Map.Put(tx, 1, 1);
        Savepoint second = tx.SetSavepoint(); // one write after `first`
        f.Map.Put(tx, 2, 2);
        tx.RollbackToSavepoint(first);
        f.Map.Put(tx, 3, 3);
        Savepoint third = tx.SetSavepoint(); // again one write after `first`: the same undo position as `second`
        f.Map.Put(tx, 4, 4);

        Assert.That(third.UndoPosition, Is.EqualTo(second.UndoPosition));
        Assert.Throws<ArgumentException>(() => tx.RollbackToSavepoint(second), "rolled back past, whatever its position");
        Assert.Throws<ArgumentException>(() => tx.ReleaseSavepoint(second));
        tx.RollbackToSavepoint(third);
        Assert.That(f.Map.Get(tx, 3, -1), Is.EqualTo(3), "third's rollback keeps the write before it");
        Assert.That(f.Map.Get(tx, 4, -1), Is.EqualTo(-1));
        Assert.Throws<ArgumentException>(() => tx.RollbackToSavepoint(new Savepoint(tx.Id, 0)), "a savepoint not made by SetSavepoint");
    }
}
