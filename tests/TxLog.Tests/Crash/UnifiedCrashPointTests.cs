using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;
using static TxLog.Tests.Crash.CrashPoints;

namespace TxLog.Tests.Crash;

/// <summary>
/// Power cut at every step of unified transactions racing MVCC checkpoints, of MVCC commits in
/// Periodic sync mode, and of the consumer-offsets restatement at open: each image is reopened and
/// checked (all or nothing of each transaction, acknowledged ones kept, maps a prefix of the commit
/// order, committed offsets never lost or moved back). Clean on main when written.
/// </summary>
public class UnifiedCrashPointTests
{
    private static readonly MvccOptions Instant = new() { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue };

    private static readonly TopicPartition A = new("a", 0);
    private static readonly TopicPartition B = new("b", 0);

    private static int _unifiedAcked;

    // Unified transaction i: map key i = i, key 1000 = i, "u{i}" on a and b, group g's offset on a = i + 1.
    private static async Task UnifiedAsync(LogStore store, Producer producer, TransactionalMap<int, long> map, int i)
    {
        StoreTransaction st = store.BeginTransaction(producer);
        map.Put(st.Maps, i, i);
        map.Put(st.Maps, 1000, i);
        await st.ProduceAsync(A, Tx.Msg("u" + i));
        await st.ProduceAsync(B, Tx.Msg("u" + i));
        await st.SendOffsetsAsync([new TopicPartitionOffset(A, i + 1)], "g");
        await st.CommitAsync();
    }

    [Test]
    public Task Power_cut_during_unified_transactions_racing_checkpoints() => UnifiedRacingCheckpointsAsync(Instant);

    [Test]
    public Task Power_cut_during_unified_transactions_racing_checkpoints_with_periodic_mvcc() => UnifiedRacingCheckpointsAsync(Periodic);

    private static int _plainAcked;
    private static int _unifiedAckedAtImage, _plainAckedAtImage;

    private static async Task UnifiedRacingCheckpointsAsync(MvccOptions mvcc)
    {
        TransactionEngine? engine = null;
        TransactionalMap<int, long>? map = null;
        Producer? producer = null;
        const int Setup = 3, Total = 9;
        Volatile.Write(ref _unifiedAcked, 0);
        Volatile.Write(ref _plainAcked, 0);
        await RunAsync("unified-checkpoint-" + mvcc.SyncMode, async store =>
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            engine = store.OpenTransactionEngine(mvcc);
            map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            producer = await Tx.TransactionalAsync(store, "u");
            for (int i = 0; i < Setup; i++)
            {
                await UnifiedAsync(store, producer, map, i);
                Volatile.Write(ref _unifiedAcked, i + 1);
            }

            await engine.CheckpointAsync();
        }, async (store, _) =>
        {
            // Plain commits alongside: each copies key 1000 (the last visible unified transaction) to key
            // 1001 and counts up key 1002, so each depends on the unified transaction it read.
            using var stop = new CancellationTokenSource();
            Task plainWriter = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    using MvccTransaction tx = engine!.BeginTransaction(TransactionIsolation.Serializable);
                    long last = map!.TryGet(tx, 1000, out long l) ? l : -1;
                    long n = map.TryGet(tx, 1002, out long c) ? c : 0;
                    map.Put(tx, 1001, last);
                    map.Put(tx, 1002, n + 1);
                    try
                    {
                        await tx.CommitAsync();
                        Volatile.Write(ref _plainAcked, (int)n + 1);
                    }
                    catch (TxLogException)
                    {
                    }

                    await Task.Delay(1);
                }
            });
            for (int i = Setup; i < Total; i++)
            {
                Task checkpoint = i % 2 == 0 ? Task.Run(() => engine!.CheckpointAsync()) : Task.CompletedTask;
                await UnifiedAsync(store, producer!, map!, i);
                Volatile.Write(ref _unifiedAcked, i + 1);
                using (MvccTransaction plain = engine!.BeginTransaction())
                {
                    map!.Put(plain, 2000 + i, i);
                    await plain.CommitAsync();
                }

                await checkpoint;
            }

            stop.Cancel();
            await plainWriter;
            await engine!.CheckpointAsync();
            await producer!.DisposeAsync();
            engine.Dispose();
        }, s =>
        {
            var problems = new List<string>();
            int acked = _unifiedAckedAtImage;
            int plainAcked = mvcc.SyncMode == LogSyncMode.Instant ? _plainAckedAtImage : 0;
            TransactionEngine e = s.OpenTransactionEngine(Instant); // recovery does not depend on the sync mode
            TransactionalMap<int, long> m = e.OpenMap("m", Serializers.Int32, Serializers.Int64);
            List<string> a = Tx.Values(s.GetPartition("a", 0), IsolationLevel.ReadCommitted);
            List<string> b = Tx.Values(s.GetPartition("b", 0), IsolationLevel.ReadCommitted);
            long? offset = s.Groups.Committed("g", A);
            int present = 0;
            using (MvccTransaction rc = e.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                for (int i = 0; i < Total; i++)
                {
                    bool inMap = m.TryGet(rc, i, out long v) && v == i;
                    bool inA = a.Contains("u" + i), inB = b.Contains("u" + i);
                    if (inMap != inA || inA != inB)
                    {
                        problems.Add($"unified {i} torn: map {inMap}, a {inA}, b {inB}");
                    }

                    if (inMap && present == i)
                    {
                        present = i + 1;
                    }
                    else if (inMap)
                    {
                        problems.Add($"unified {i} without {present}");
                    }
                }

                if (present < acked)
                {
                    problems.Add($"{present} unified transactions, {acked} acknowledged");
                }

                long last = m.TryGet(rc, 1000, out long l) ? l : -1;
                if (last != present - 1)
                {
                    problems.Add($"key 1000 = {last}, {present} transactions");
                }

                long copied = m.TryGet(rc, 1001, out long cp) ? cp : -1;
                if (copied > last)
                {
                    problems.Add($"a plain commit read unified {copied}, only {last} recovered");
                }

                long plain = m.TryGet(rc, 1002, out long pc) ? pc : 0;
                if (plain < plainAcked)
                {
                    problems.Add($"{plain} plain commits, {plainAcked} acknowledged");
                }

                if ((offset ?? 0) != present)
                {
                    problems.Add($"offset {offset}, {present} transactions");
                }
            }

            // A new map transaction sees the same and can write over it.
            using (MvccTransaction rw = e.BeginTransaction(TransactionIsolation.Serializable))
            {
                long last = m.TryGet(rw, 1000, out long l) ? l : -1;
                if (last != present - 1)
                {
                    problems.Add($"serializable: key 1000 = {last}, {present} transactions");
                }

                m.Put(rw, 1000, 99);
                rw.Commit();
            }

            return problems;
        }, beforeImage: () =>
        {
            _unifiedAckedAtImage = Volatile.Read(ref _unifiedAcked);
            _plainAckedAtImage = Volatile.Read(ref _plainAcked);
        });
    }

    // Periodic: a short interval so that timer fsyncs land between commits. (Much shorter, with every
    // image checked on the thread that took it, the timer's blocked flushes starve the thread pool and
    // the image stores' closes time out: a harness effect.)
    private static readonly MvccOptions Periodic = new() { SyncMode = LogSyncMode.Periodic, SyncInterval = TimeSpan.FromMilliseconds(20), CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue };

    [Test]
    public async Task Power_cut_during_periodic_mvcc_commits_leaves_a_prefix()
    {
        TransactionEngine? engine = null;
        TransactionalMap<int, long>? m1 = null, m2 = null;
        const int Commits = 20;
        await RunAsync("periodic", async store =>
        {
            engine = store.OpenTransactionEngine(Periodic);
            m1 = engine.OpenMap("m1", Serializers.Int32, Serializers.Int64);
            m2 = engine.OpenMap("m2", Serializers.Int32, Serializers.Int64);
            using (MvccTransaction tx = engine.BeginTransaction())
            {
                m1.Put(tx, 0, 0);
                m2.Put(tx, 0, 0);
                await tx.CommitAsync();
            }

            await engine.CheckpointAsync();
        }, async (store, _) =>
        {
            for (int n = 1; n <= Commits; n++)
            {
                // Each commit reads the counter the previous one wrote: a chain of dependencies.
                using (MvccTransaction tx = engine!.BeginTransaction(TransactionIsolation.Serializable))
                {
                    long c = m1!.Get(tx, 0);
                    m1.Put(tx, 0, c + 1);
                    m1.Put(tx, (int)c + 1, c + 1);
                    m2!.Put(tx, 0, c + 1);
                    m2.Put(tx, (int)c + 1, c + 1);
                    if (n % 3 == 0)
                    {
                        m1.Remove(tx, (int)c - 1);
                    }

                    await tx.CommitAsync();
                }

                if (n % 10 == 5)
                {
                    await engine!.CheckpointAsync();
                }
                else if (n % 7 == 0)
                {
                    await Task.Delay(5);
                }
            }

            engine!.Dispose();
        }, s =>
        {
            var problems = new List<string>();
            TransactionEngine e = s.OpenTransactionEngine(Instant); // recovery does not depend on the sync mode
            TransactionalMap<int, long> a = e.OpenMap("m1", Serializers.Int32, Serializers.Int64);
            TransactionalMap<int, long> b = e.OpenMap("m2", Serializers.Int32, Serializers.Int64);
            using MvccTransaction rc = e.BeginTransaction(TransactionIsolation.ReadCommitted);
            long c1 = a.TryGet(rc, 0, out long x) ? x : -1;
            long c2 = b.TryGet(rc, 0, out long y) ? y : -1;
            if (c1 != c2 || c1 < 0)
            {
                problems.Add($"counters {c1} / {c2}");
                return problems;
            }

            for (int k = 1; k <= Commits + 1; k++)
            {
                bool removed = k <= c1 - 2 && (k + 2) % 3 == 0; // commit n = k + 2 removes key k when n % 3 == 0
                bool expected = k <= c1 && !removed;
                if (a.ContainsKey(rc, k) != expected)
                {
                    problems.Add($"counter {c1}: m1 key {k} {(expected ? "missing" : "present")}");
                }

                if (b.ContainsKey(rc, k) != (k <= c1))
                {
                    problems.Add($"counter {c1}: m2 key {k} {(k <= c1 ? "missing" : "present")}");
                }
            }

            return problems;
        });
    }

    [Test]
    public async Task Power_cut_during_consumer_offsets_restatement()
    {
        const int Partitions = 1000, Rounds = 13;
        await RunAsync("offsets-restate", async store =>
        {
            store.CreateTopic("gone");
            Producer p = await Tx.TransactionalAsync(store, "tx");
            var tp = new TopicPartition("x", 0);
            for (int i = 0; i < 6; i++)
            {
                p.BeginTransaction();
                await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(tp, i)], "g1");
                if (i % 2 == 0)
                {
                    await p.CommitTransactionAsync();
                }
                else
                {
                    await p.AbortTransactionAsync();
                }
            }

            await p.DisposeAsync();
            await store.Groups.CommitAsync("g", [new TopicPartitionOffset(new TopicPartition("gone", 0), 5)]);
            store.DeleteTopic("gone");
            for (int round = 0; round < Rounds; round++)
            {
                var offsets = new List<TopicPartitionOffset>(Partitions);
                for (int i = 0; i < Partitions; i++)
                {
                    offsets.Add(new TopicPartitionOffset(new TopicPartition("t", i), round));
                }

                await store.Groups.CommitAsync("g", offsets);
            }

            await store.FlushAsync();
        }, (store, options) =>
        {
            store.Dispose();
            using (LogStore again = LogStore.Open(store.Directory, options))
            {
            }

            using LogStore third = LogStore.Open(store.Directory, options);
            return Task.CompletedTask;
        }, s =>
        {
            var problems = new List<string>();
            Dictionary<TopicPartition, long> g = s.Groups.CommittedOffsets("g");
            int wrong = 0;
            for (int i = 0; i < Partitions; i++)
            {
                if (!g.TryGetValue(new TopicPartition("t", i), out long o) || o != Rounds - 1)
                {
                    wrong++;
                }
            }

            if (wrong > 0)
            {
                problems.Add($"{wrong} offsets of g lost or moved back");
            }

            if (g.ContainsKey(new TopicPartition("gone", 0)))
            {
                problems.Add("the deleted topic's offset came back");
            }

            if (s.Groups.Committed("g1", new TopicPartition("x", 0)) != 4)
            {
                problems.Add($"g1 committed {s.Groups.Committed("g1", new TopicPartition("x", 0))}");
            }

            return problems;
        }, after: path =>
        {
            using LogStore s = LogStore.Open(path, Options(null));
            Assert.That(s.GetPartition(GroupCoordinator.TopicName, 0).Log.LogStartOffset, Is.GreaterThan(0), "no restatement happened");
        });
    }
}
