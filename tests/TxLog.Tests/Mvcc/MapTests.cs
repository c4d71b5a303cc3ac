using TxLog.Mvcc;

namespace TxLog.Tests.Mvcc;

public class MapTests
{
    [Test]
    public void Get_put_remove_try_update_contains_range_and_count_see_own_writes()
    {
        using var f = new EngineFixture();
        using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
        for (int k = 10; k >= 1; k--)
        {
            f.Map.Put(tx, k, k * 100);
        }

        Assert.That(f.Map.Get(tx, 3), Is.EqualTo(300), "own write visible before commit");
        Assert.That(f.Map.Remove(tx, 4), Is.True);
        Assert.That(f.Map.Remove(tx, 4), Is.False, "already removed in this transaction");
        Assert.That(f.Map.ContainsKey(tx, 4), Is.False);
        Assert.That(f.Map.TryUpdate(tx, 5, 555, 999), Is.False, "compare failed");
        Assert.That(f.Map.TryUpdate(tx, 5, 555, 500), Is.True);
        Assert.That(f.Map.Range(tx, 3, 7).Select(p => $"{p.Key}={p.Value}"), Is.EqualTo(new[] { "3=300", "5=555", "6=600" }));
        Assert.That(f.Map.RangeFrom(tx, 9).Select(p => p.Key), Is.EqualTo(new[] { 9, 10 }));
        Assert.That(f.Map.Count(tx), Is.EqualTo(9));
        Assert.That(f.Map.Count(tx, 1, 4), Is.EqualTo(3));
        tx.Commit();

        using MvccTransaction after = f.Begin(TransactionIsolation.ReadCommitted);
        Assert.That(f.Map.Scan(after).Select(p => p.Key), Is.EqualTo(new[] { 1, 2, 3, 5, 6, 7, 8, 9, 10 }), "key order");
        Assert.That(f.Map.Get(after, 5), Is.EqualTo(555));
    }

    [Test]
    public void Negative_keys_sort_before_positive_ones()
    {
        using var f = new EngineFixture();
        using MvccTransaction tx = f.Begin(TransactionIsolation.ReadCommitted);
        foreach (int k in new[] { 5, -3, 0, int.MinValue, int.MaxValue, -1 })
        {
            f.Map.Put(tx, k, k);
        }

        Assert.That(f.Map.Scan(tx).Select(p => p.Key), Is.EqualTo(new[] { int.MinValue, -3, -1, 0, 5, int.MaxValue }));
    }

    [Test]
    public void Rollback_undoes_everything_and_releases_locks()
    {
        using var f = new EngineFixture();
        f.Seed();
        MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
        f.Map.Put(tx, 1, 99);
        f.Map.Remove(tx, 2);
        f.Map.Put(tx, 3, 33);
        tx.Rollback();
        Assert.That((f.Read(1), f.Read(2), f.Read(3)), Is.EqualTo((10, 20, -1)));

        using MvccTransaction other = f.Begin(TransactionIsolation.RepeatableRead);
        f.Map.Put(other, 1, 11); // would time out if the lock were still held
        other.Commit();
        Assert.That(f.Read(1), Is.EqualTo(11));
    }

    [Test]
    public void Savepoints_roll_back_part_of_a_transaction_and_release_rows_first_locked_after_them()
    {
        using var f = new EngineFixture();
        f.Seed();
        using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
        f.Map.Put(tx, 1, 11);
        Savepoint sp = tx.SetSavepoint();
        f.Map.Put(tx, 1, 111);
        f.Map.Put(tx, 2, 22);
        f.Map.Put(tx, 7, 77);
        tx.RollbackToSavepoint(sp);
        Assert.That((f.Map.Get(tx, 1), f.Map.Get(tx, 2), f.Map.ContainsKey(tx, 7)), Is.EqualTo((11, 20, false)));

        // Row 2 and 7 were first locked after the savepoint: another transaction can take them now.
        using (MvccTransaction other = f.Begin(TransactionIsolation.ReadCommitted))
        {
            f.Map.Put(other, 2, 200);
            other.Commit();
        }

        // Row 1 stays locked by tx.
        using (MvccTransaction other = f.Begin(TransactionIsolation.ReadCommitted))
        {
            Assert.Throws<WriteConflictException>(() => f.Map.Put(other, 1, 1000));
        }

        Savepoint sp2 = tx.SetSavepoint();
        f.Map.Put(tx, 8, 88);
        tx.ReleaseSavepoint(sp2);
        tx.Commit();
        Assert.That((f.Read(1), f.Read(2), f.Read(7), f.Read(8)), Is.EqualTo((11, 200, -1, 88)));
        Assert.Throws<InvalidOperationException>(() => tx.RollbackToSavepoint(sp));
    }

    [Test]
    public void Bad_input_gets_clear_exceptions_and_changes_nothing()
    {
        using var f = new EngineFixture(new MvccOptions { SyncMode = LogSyncMode.NoSync, MaxKeyBytes = 8, MaxValueBytes = 16, CheckpointInterval = null });
        TransactionalMap<byte[], byte[]> raw = f.Engine.OpenMap("raw");
        TransactionalMap<string, string> strings = f.Engine.OpenMap("strings", Serializers.String, Serializers.String);
        using (MvccTransaction tx = f.Begin(TransactionIsolation.ReadCommitted))
        {
            Assert.Throws<ArgumentNullException>(() => raw.Put(tx, null!, [1]));
            Assert.Throws<ArgumentNullException>(() => strings.Put(tx, "k", null!));
            Assert.Throws<ArgumentException>(() => raw.Put(tx, new byte[9], [1]), "key over the limit");
            Assert.Throws<ArgumentException>(() => raw.Put(tx, [1], new byte[17]), "value over the limit");
            Assert.Throws<ArgumentNullException>(() => raw.Put(null!, [1], [1]));
            tx.Commit();
            Assert.Throws<InvalidOperationException>(() => raw.Put(tx, [1], [1]), "use after commit");
            Assert.Throws<InvalidOperationException>(() => raw.Get(tx, [1]), "read after commit");
        }

        MvccTransaction rolledBack = f.Begin(TransactionIsolation.ReadCommitted);
        rolledBack.Rollback();
        Assert.Throws<InvalidOperationException>(() => raw.Put(rolledBack, [1], [1]), "use after rollback");
        MvccTransaction disposed = f.Begin(TransactionIsolation.ReadCommitted);
        disposed.Dispose();
        Assert.Throws<InvalidOperationException>(() => raw.Put(disposed, [1], [1]), "use after dispose");

        foreach (string bad in new[] { "", "a/b", "../x", "é", new string('m', 250) })
        {
            Assert.Throws(Is.InstanceOf<ArgumentException>(), () => f.Engine.OpenMap(bad), bad);
        }

        using MvccTransaction check = f.Begin(TransactionIsolation.ReadCommitted);
        Assert.That(raw.Count(check), Is.Zero, "nothing was written");
        Assert.That(f.Engine.MapNames(), Is.EquivalentTo(new[] { "raw", "strings", "test" }));
    }

    [Test]
    public void A_second_writer_times_out_with_a_write_conflict_and_reads_never_block()
    {
        using var f = new EngineFixture();
        f.Seed();
        using MvccTransaction holder = f.Begin(TransactionIsolation.ReadCommitted);
        f.Map.Put(holder, 1, 11);
        using MvccTransaction reader = f.Begin(TransactionIsolation.ReadCommitted);
        Assert.That(f.Map.Get(reader, 1), Is.EqualTo(10), "a read does not wait for the row lock");
        using MvccTransaction writer = f.Begin(TransactionIsolation.ReadCommitted);
        var started = DateTime.UtcNow;
        WriteConflictException e = Assert.Throws<WriteConflictException>(() => f.Map.Put(writer, 1, 12))!;
        Assert.That(DateTime.UtcNow - started, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(150)), "waited about the lock timeout");
        Assert.That(e.Message, Does.Contain("lock timeout"));
    }

    [Test]
    public void A_waiting_writer_proceeds_when_the_holder_commits()
    {
        using var f = new EngineFixture(new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromSeconds(10), CheckpointInterval = null });
        f.Seed();
        MvccTransaction holder = f.Begin(TransactionIsolation.ReadCommitted);
        f.Map.Put(holder, 1, 11);
        Task waiting = Task.Run(() =>
        {
            using MvccTransaction writer = f.Begin(TransactionIsolation.ReadCommitted);
            f.Map.Put(writer, 1, 12);
            writer.Commit();
        });
        Assert.That(waiting.Wait(100), Is.False, "blocked by the row lock");
        holder.Commit();
        Assert.That(waiting.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(f.Read(1), Is.EqualTo(12));
    }

    [Test]
    public void A_deadlock_is_detected_and_one_victim_gets_DeadlockException()
    {
        using var f = new EngineFixture(new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromSeconds(10), CheckpointInterval = null });
        f.Seed();
        MvccTransaction a = f.Begin(TransactionIsolation.ReadCommitted);
        MvccTransaction b = f.Begin(TransactionIsolation.ReadCommitted);
        f.Map.Put(a, 1, 11);
        f.Map.Put(b, 2, 22);
        Task<Exception?> aWaits = Task.Run(() => Catch(() => f.Map.Put(a, 2, 21)));
        SpinWait.SpinUntil(() => a.WaitingFor is not null, TimeSpan.FromSeconds(5));
        Exception? bResult = Catch(() => f.Map.Put(b, 1, 12));
        Assert.That(bResult, Is.InstanceOf<DeadlockException>(), "b closes the cycle and is the victim");
        b.Rollback();
        Assert.That(aWaits.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(aWaits.Result, Is.Null, "a got the lock once the victim rolled back");
        a.Commit();
        Assert.That((f.Read(1), f.Read(2)), Is.EqualTo((11, 21)));
    }

    private static Exception? Catch(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }
}
