using TxLog.Mvcc;
using static TxLog.Mvcc.TransactionIsolation;

namespace TxLog.Tests.Mvcc;

/// <summary>
/// Martin Kleppmann's Hermitage anomaly tests, on rows (1, 10) and (2, 20), at every isolation level.
/// Each test asserts the outcome docs/isolation.md promises for that level: the anomaly either happens
/// (allowed) or is prevented (blocked, a conflict, or a consistent read).
/// </summary>
[TestFixture(ReadUncommitted)]
[TestFixture(ReadCommitted)]
[TestFixture(RepeatableRead)]
[TestFixture(Serializable)]
public class HermitageTests(TransactionIsolation level)
{
    private EngineFixture _f = null!;

    private TransactionalMap<int, int> Map => _f.Map;

    [SetUp]
    public void SetUp()
    {
        // Lock timeout 0: a write that would block fails at once, which shows the block deterministically.
        _f = new EngineFixture(new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.Zero, CheckpointInterval = null });
        _f.Seed();
    }

    [TearDown]
    public void TearDown() => _f.Dispose();

    private MvccTransaction Begin() => _f.Begin(level);

    private bool SnapshotLevel => level is RepeatableRead or Serializable;

    [Test]
    public void G0_dirty_write_is_prevented()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        Map.Put(t1, 1, 11);
        Assert.Throws<WriteConflictException>(() => Map.Put(t2, 1, 12), "t2 cannot overwrite t1's uncommitted write");
        Map.Put(t1, 2, 21);
        t1.Commit();
        if (SnapshotLevel)
        {
            Assert.Throws<WriteConflictException>(() => Map.Put(t2, 1, 12), "first committer wins");
            t2.Rollback();
            Assert.That((_f.Read(1), _f.Read(2)), Is.EqualTo((11, 21)));
        }
        else
        {
            Map.Put(t2, 1, 12);
            Map.Put(t2, 2, 22);
            t2.Commit();
            Assert.That((_f.Read(1), _f.Read(2)), Is.EqualTo((12, 22)), "the writes of each transaction stay together");
        }
    }

    [Test]
    public void G1a_aborted_read_is_allowed_only_at_read_uncommitted()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        Map.Put(t1, 1, 101);
        int seen = Map.Get(t2, 1);
        t1.Rollback();
        Assert.That(seen, Is.EqualTo(level == ReadUncommitted ? 101 : 10));
        Assert.That(Map.Get(t2, 1), Is.EqualTo(10));
    }

    [Test]
    public void G1b_intermediate_read_is_allowed_only_at_read_uncommitted()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        Map.Put(t1, 1, 101);
        int first = Map.Get(t2, 1);
        Map.Put(t1, 1, 11);
        t1.Commit();
        int second = Map.Get(t2, 1);
        Assert.That(first, Is.EqualTo(level == ReadUncommitted ? 101 : 10), "101 is an intermediate value");
        Assert.That(second, Is.EqualTo(SnapshotLevel ? 10 : 11));
    }

    [Test]
    public void G1c_circular_information_flow_is_allowed_only_at_read_uncommitted()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        Map.Put(t1, 1, 11);
        Map.Put(t2, 2, 22);
        int t1Sees2 = Map.Get(t1, 2);
        int t2Sees1 = Map.Get(t2, 1);
        t1.Commit();
        if (level == Serializable)
        {
            // Each read the other's old value: an anti-dependency cycle, so one of them must fail.
            Assert.Throws<SerializationException>(t2.Commit);
        }
        else
        {
            t2.Commit();
        }

        bool cycle = t1Sees2 == 22 && t2Sees1 == 11;
        Assert.That(cycle, Is.EqualTo(level == ReadUncommitted));
    }

    [Test]
    public void OTV_observed_transaction_vanishes_is_prevented_above_read_uncommitted()
    {
        if (level == ReadUncommitted)
        {
            // Allowed here: a reader sees t2's write, then t2 rolls back and the write vanishes.
            using MvccTransaction w = Begin();
            using MvccTransaction r = Begin();
            Map.Put(w, 1, 12);
            Assert.That(Map.Get(r, 1), Is.EqualTo(12));
            w.Rollback();
            Assert.That(Map.Get(r, 1), Is.EqualTo(10), "the observed write vanished");
            return;
        }

        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        Map.Put(t1, 1, 11);
        Map.Put(t1, 2, 19);
        Assert.Throws<WriteConflictException>(() => Map.Put(t2, 1, 12));
        t1.Commit();
        using MvccTransaction t3 = Begin();
        if (!SnapshotLevel)
        {
            Map.Put(t2, 1, 12);
            Map.Put(t2, 2, 18);
            Assert.That(Map.Get(t3, 1), Is.EqualTo(11));
            t2.Commit();
            int x1 = Map.Get(t3, 1);
            int x2 = Map.Get(t3, 2);
            Assert.That((x1, x2), Is.EqualTo((12, 18)), "once t2 is seen, all of t2 is seen");
        }
        else
        {
            Assert.That((Map.Get(t3, 1), Map.Get(t3, 2)), Is.EqualTo((11, 19)));
        }
    }

    [Test]
    public void PMP_predicate_many_preceders_phantom_is_prevented_at_snapshot_levels()
    {
        using MvccTransaction t1 = Begin();
        int before = Map.Scan(t1).Count(p => p.Value == 30);
        using (MvccTransaction t2 = Begin())
        {
            Map.Put(t2, 3, 30);
            t2.Commit();
        }

        int after = Map.Scan(t1).Count(p => p.Value % 3 == 0);
        Assert.That(before, Is.Zero);
        Assert.That(after, Is.EqualTo(SnapshotLevel ? 0 : 1), "the inserted row appears as a phantom below RR");
    }

    [Test]
    public void P4_lost_update_is_prevented_at_snapshot_levels()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        int v1 = Map.Get(t1, 1);
        int v2 = Map.Get(t2, 1);
        Map.Put(t1, 1, v1 + 1);
        t1.Commit();
        if (SnapshotLevel)
        {
            Assert.Throws<WriteConflictException>(() => Map.Put(t2, 1, v2 + 1));
            Assert.That(_f.Read(1), Is.EqualTo(11));
        }
        else
        {
            Map.Put(t2, 1, v2 + 1);
            t2.Commit();
            Assert.That(_f.Read(1), Is.EqualTo(11), "two increments, one lost");
        }
    }

    [Test]
    public void G_single_read_skew_is_prevented_at_snapshot_levels()
    {
        using MvccTransaction t1 = Begin();
        int x1 = Map.Get(t1, 1);
        using (MvccTransaction t2 = Begin())
        {
            Map.Put(t2, 1, 12);
            Map.Put(t2, 2, 18);
            t2.Commit();
        }

        int x2 = Map.Get(t1, 2);
        Assert.That(x1 + x2, SnapshotLevel ? Is.EqualTo(30) : Is.EqualTo(28), "10 + 18 mixes two states");
    }

    [Test]
    public void G2_item_write_skew_is_prevented_only_at_serializable()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        int s1 = Map.Get(t1, 1) + Map.Get(t1, 2);
        int s2 = Map.Get(t2, 1) + Map.Get(t2, 2);
        Map.Put(t1, 1, 11 - s1 + 30);
        Map.Put(t2, 2, 21 - s2 + 30);
        t1.Commit();
        if (level == Serializable)
        {
            Assert.Throws<SerializationException>(t2.Commit);
            Assert.That((_f.Read(1), _f.Read(2)), Is.EqualTo((11, 20)));
        }
        else
        {
            t2.Commit();
            Assert.That((_f.Read(1), _f.Read(2)), Is.EqualTo((11, 21)), "both wrote from the same stale sum");
        }
    }

    [Test]
    public void G2_anti_dependency_cycle_over_a_predicate_is_prevented_only_at_serializable()
    {
        using MvccTransaction t1 = Begin();
        using MvccTransaction t2 = Begin();
        int c1 = Map.Scan(t1).Count(p => p.Value % 3 == 0);
        int c2 = Map.Scan(t2).Count(p => p.Value % 3 == 0);
        Assert.That((c1, c2), Is.EqualTo((0, 0)));
        Map.Put(t1, 3, 30);
        Map.Put(t2, 4, 42);
        t1.Commit();
        if (level == Serializable)
        {
            Assert.Throws<SerializationException>(t2.Commit, "t2's scan missed t1's insert");
            Assert.That(_f.Read(4), Is.EqualTo(-1));
        }
        else
        {
            t2.Commit();
            Assert.That((_f.Read(3), _f.Read(4)), Is.EqualTo((30, 42)));
        }
    }
}
