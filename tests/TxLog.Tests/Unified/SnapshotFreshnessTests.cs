using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>
/// A RepeatableRead snapshot excludes exactly the commits still being installed when it begins: while a
/// unified transaction waits for its decision, later commits stay visible to new snapshots (no stale
/// snapshots, no needless write conflicts), and the excluded commit stays invisible to that snapshot.
/// </summary>
public class SnapshotFreshnessTests
{
    [Test]
    public async Task A_snapshot_taken_during_a_slow_commit_sees_later_commits_but_not_the_slow_one()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("events");
        store.CreateTopic("audit");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, LockTimeout = TimeSpan.Zero });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        await using Producer producer = await TransactionalAsync(store, "slow");

        MvccTransaction? during = null;
        store.Coordinator.StepHook = step =>
        {
            if (step != "prepare" || during is not null)
            {
                return;
            }

            // The unified transaction has its commit timestamp but is not decided yet. Another
            // transaction commits row 2 meanwhile, and then a snapshot begins.
            using (MvccTransaction other = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                map.Put(other, 2, 20);
                other.Commit();
            }

            during = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        };

        StoreTransaction slow = store.BeginTransaction(producer);
        map.Put(slow.Maps, 1, 10);
        await slow.ProduceAsync(new TopicPartition("events", 0), Msg("e"));
        await slow.ProduceAsync(new TopicPartition("audit", 0), Msg("a"));
        await slow.CommitAsync();
        store.Coordinator.StepHook = null;

        Assert.That(during, Is.Not.Null);
        using (during)
        {
            Assert.That(map.Get(during!, 2, -1), Is.EqualTo(20), "the commit installed after the slow one began is visible");
            Assert.That(map.Get(during!, 1, -1), Is.EqualTo(-1), "the commit in flight at the snapshot stays invisible to it");
            Assert.Throws<WriteConflictException>(() => map.Put(during!, 1, 11), "and overwriting it would lose an update");
        }

        using MvccTransaction after = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        Assert.That((map.Get(after, 1, -1), map.Get(after, 2, -1)), Is.EqualTo((10L, 20L)));
    }

    // Regression: ReadCommitted reads used the prefix timestamp (every commit below it installed), so a
    // transaction's own finished commit was hidden while an older unified commit was still being decided,
    // and a read-modify-write started after it read the value before it: a lost update.
    [Test]
    public async Task Read_committed_sees_a_finished_commit_while_an_older_one_is_still_being_decided()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("events");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, LockTimeout = TimeSpan.Zero });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        await using Producer producer = await TransactionalAsync(store, "slow");

        long? readDuring = null;
        long? uncommittedInFlight = null;
        store.Coordinator.StepHook = step =>
        {
            if (step != "prepare" || readDuring is not null)
            {
                return;
            }

            using (MvccTransaction writer = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                map.Put(writer, 2, 20);
                writer.Commit();
            }

            using MvccTransaction reader = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            readDuring = map.Get(reader, 2, -1);
            uncommittedInFlight = map.Get(reader, 1, -1);
        };

        StoreTransaction slow = store.BeginTransaction(producer);
        map.Put(slow.Maps, 1, 10);
        await slow.ProduceAsync(new TopicPartition("events", 0), Msg("e"));
        await slow.CommitAsync();
        store.Coordinator.StepHook = null;

        Assert.That(readDuring, Is.EqualTo(20), "the finished commit is visible to a new ReadCommitted read");
        Assert.That(uncommittedInFlight, Is.EqualTo(-1), "the commit still being decided is not");
        using MvccTransaction after = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(map.Get(after, 1, -1), Is.EqualTo(10));
    }
}
