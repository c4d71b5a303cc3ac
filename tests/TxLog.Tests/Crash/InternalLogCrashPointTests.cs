using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;
using static TxLog.Tests.Crash.CrashPoints;

namespace TxLog.Tests.Crash;

/// <summary>Power cut at every step of the internal logs' structural operations (checkpoints, restatements, topic deletion).</summary>
public class InternalLogCrashPointTests
{
    private static readonly MvccOptions Mvcc = new() { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue };

    [Test]
    public Task Power_cut_during_mvcc_checkpoints() => RunAsync("checkpoint", async store =>
    {
        TransactionEngine engine = store.OpenTransactionEngine(Mvcc);
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 40; i++)
            {
                using MvccTransaction tx = engine.BeginTransaction();
                map.Put(tx, i, (round * 1000) + i);
                tx.Commit();
            }

            await engine.CheckpointAsync();
        }
    }, async (store, _) =>
    {
        TransactionEngine engine = store.OpenTransactionEngine(Mvcc);
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        for (int i = 0; i < 40; i += 2)
        {
            using MvccTransaction tx = engine.BeginTransaction();
            map.Remove(tx, i);
            tx.Commit();
        }

        await engine.CheckpointAsync();
        await engine.CheckpointAsync();
    }, s =>
    {
        var problems = new List<string>();
        TransactionEngine engine = s.OpenTransactionEngine(Mvcc);
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        using MvccTransaction tx = engine.BeginTransaction();
        for (int i = 0; i < 40; i++)
        {
            bool found = map.TryGet(tx, i, out long v);
            if (i % 2 == 1 && (!found || v != 2000 + i))
            {
                problems.Add($"key {i}: {(found ? v : "missing")}");
            }
            else if (i % 2 == 0 && found && v != 2000 + i)
            {
                problems.Add($"key {i}: {v}");
            }
        }

        return problems;
    });

    // The engine's first open creates the checkpoint directory: its entry in the store directory must
    // be durable before checkpoints in it let the redo they cover go.
    private static long _acked;

    [Test]
    public Task Power_cut_after_the_first_checkpoints_of_a_new_engine() => RunAsync("first-checkpoints", store => Task.CompletedTask, async (store, _) =>
    {
        TransactionEngine engine = store.OpenTransactionEngine(Mvcc);
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 40; i++)
            {
                using MvccTransaction tx = engine.BeginTransaction();
                map.Put(tx, i, (round * 1000) + i);
                tx.Commit();
                Volatile.Write(ref _acked, _acked + 1);
            }

            await engine.CheckpointAsync();
        }
    }, s =>
    {
        var problems = new List<string>();
        long acked = Math.Min(40, Volatile.Read(ref _acked));
        TransactionEngine engine = s.OpenTransactionEngine(Mvcc);
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        using MvccTransaction tx = engine.BeginTransaction();
        long count = map.Count(tx);
        if (count < acked)
        {
            problems.Add($"{count} keys, {acked} acknowledged");
        }

        return problems;
    });

    [Test]
    public Task Power_cut_during_topic_deletion_and_recreation() => RunAsync("delete-topic", async store =>
    {
        store.CreateTopic("keep");
        store.CreateTopic("gone", 2);
        for (int i = 0; i < 30; i++)
        {
            await store.GetPartition("keep", 0).AppendAsync(Tx.Msg("k" + i));
            await store.GetPartition("gone", i % 2).AppendAsync(Tx.Msg("old" + i));
        }

        await store.FlushAsync();
    }, async (store, _) =>
    {
        store.DeleteTopic("gone");
        store.CreateTopic("gone", 1);
        await store.GetPartition("gone", 0).AppendAsync(Tx.Msg("new"));
        await store.FlushAsync();
    }, s =>
    {
        var problems = new List<string>();
        List<string> keep = Tx.Values(s.GetPartition("keep", 0), IsolationLevel.ReadUncommitted);
        if (keep.Count != 30)
        {
            problems.Add($"keep has {keep.Count}");
        }

        if (s.TopicExists("gone"))
        {
            int n = s.PartitionCount("gone");
            for (int p = 0; p < n; p++)
            {
                List<string> v = Tx.Values(s.GetPartition("gone", p), IsolationLevel.ReadUncommitted);
                if (n == 1 && v.Any(x => x.StartsWith("old", StringComparison.Ordinal)))
                {
                    problems.Add($"recreated topic shows old data: {string.Join(",", v.Take(3))}");
                }

                if (n == 2 && v.Contains("new"))
                {
                    problems.Add("old topic shows new data");
                }
            }
        }

        return problems;
    });

    private static int GroupCommits = 100;

    [Test]
    public Task Power_cut_during_coordinator_restatement()
    {
        GroupCommits = 100;
        return Restatement(DurabilityMode.GroupCommit);
    }

    [Test]
    public Task Power_cut_during_a_live_coordinator_restatement()
    {
        GroupCommits = 100;
        return Restatement(DurabilityMode.GroupCommit, live: true);
    }

    private static Producer? _open;
    private static volatile bool _openCommitted;

    // __consumer_offsets restated while the store runs: a deleted topic's tombstones (deleted with the
    // history), transactions' offsets (committed and aborted), plain commits, and, with
    // pendingTransaction, a transaction open across the restatement with offsets pending on a key that
    // has plain commits (g2) and on one that has none (g3), committed after it: every image shows both
    // of its offsets or neither (recovery aborts it when its decision did not survive), and both once
    // the commit was acknowledged.
    [TestCase(false)]
    [TestCase(true)]
    public Task Power_cut_during_a_live_offsets_restatement(bool pendingTransaction) => RunAsync(pendingTransaction ? "live offsets restate (open transaction)" : "live offsets restate", async store =>
    {
        store.CreateTopic("t");
        store.CreateTopic("gone");
        var tp = new TopicPartition("t", 0);
        var gone = new TopicPartition("gone", 0);
        for (int i = 0; i < 20; i++)
        {
            await store.Groups.CommitAsync("g4", [new TopicPartitionOffset(gone, i)]);
        }

        store.DeleteTopic("gone");
        Producer p = await Tx.TransactionalAsync(store, "tx");
        for (int i = 0; i < 40; i++)
        {
            p.BeginTransaction();
            await p.ProduceAsync(tp, Tx.Msg("v" + i));
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

        for (int i = 0; i < 100; i++)
        {
            await store.Groups.CommitAsync("g2", [new TopicPartitionOffset(tp, i)]);
        }

        for (int i = 0; i < 40; i++)
        {
            await store.Groups.CommitAsync("g5", [new TopicPartitionOffset(new TopicPartition("t", i % 4), i)]); // segments after g2's last commit
        }

        _open = null;
        _openCommitted = false;
        if (pendingTransaction)
        {
            p.BeginTransaction();
            await p.ProduceAsync(tp, Tx.Msg("open"));
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(tp, 999)], "g2");
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(tp, 5)], "g3");
            _open = p;
        }

        await store.FlushAsync();
    }, async (store, _) =>
    {
        store.Groups.LiveRestateSlack = 10;
        long start = store.GetPartition(GroupCoordinator.TopicName, 0).LogStartOffset;
        Assert.That(store.Groups.RestateIfGrown(), Is.True, "the history is restated");
        Assert.That(store.GetPartition(GroupCoordinator.TopicName, 0).LogStartOffset, Is.GreaterThan(start));
        if (_open is { } open)
        {
            await open.CommitTransactionAsync();
            _openCommitted = true;
        }
    }, s =>
    {
        var problems = new List<string>();
        var tp = new TopicPartition("t", 0);
        bool acknowledged = _openCommitted;
        if (s.Groups.Committed("g1", tp) != 38)
        {
            problems.Add($"g1 committed {s.Groups.Committed("g1", tp)}");
        }

        long? g2 = s.Groups.Committed("g2", tp);
        long? g3 = s.Groups.Committed("g3", tp);
        bool before = g2 == 99 && g3 is null;
        bool after = pendingTransaction && g2 == 999 && g3 == 5;
        if (!(before && !acknowledged) && !after)
        {
            problems.Add($"g2 committed {g2}, g3 {g3} (acknowledged: {acknowledged})");
        }

        if (s.Groups.Committed("g4", new TopicPartition("gone", 0)) is { } g4)
        {
            problems.Add($"g4 committed {g4} on a deleted topic");
        }

        return problems;
    });

    private static volatile int _plainAcked;
    private static int _plainAckedAtImage;
    private static volatile bool _deleted;
    private static bool _deletedAtImage;

    // Plain commits acknowledged (and a topic deleted) while live restatements run: every image holds
    // every acknowledged commit, the history, and none of the deleted topic's offsets once deleted.
    [Test]
    public Task Power_cut_during_live_restatements_with_concurrent_plain_commits_and_a_topic_deletion() => RunAsync("offsets restate + commits", async store =>
    {
        store.CreateTopic("t");
        store.CreateTopic("gone");
        _plainAcked = 0;
        _deleted = false;
        for (int i = 0; i < 60; i++)
        {
            await store.Groups.CommitAsync("h", [new TopicPartitionOffset(new TopicPartition("t", i % 4), i)]);
        }

        await store.Groups.CommitAsync("d", [new TopicPartitionOffset(new TopicPartition("gone", 0), 3)]);
        await store.FlushAsync();
    }, async (store, _) =>
    {
        store.Groups.LiveRestateSlack = 10;
        var k = new TopicPartition("t", 9);
        Task committer = Task.Run(async () =>
        {
            for (int i = 1; i <= 30; i++)
            {
                await store.Groups.CommitAsync("g", [new TopicPartitionOffset(k, i)]);
                _plainAcked = i;
                if (i == 10)
                {
                    store.DeleteTopic("gone");
                    _deleted = true;
                }
            }
        });
        while (!committer.IsCompleted)
        {
            store.Groups.RestateIfGrown();
            await Task.Delay(1);
        }

        await committer;
        Assert.That(store.Groups.Restatements, Is.GreaterThan(0), "restated");
    }, s =>
    {
        var problems = new List<string>();
        long? g = s.Groups.Committed("g", new TopicPartition("t", 9));
        if ((g ?? 0) < _plainAckedAtImage)
        {
            problems.Add($"g committed {g}, acknowledged {_plainAckedAtImage}");
        }

        for (int p = 0; p < 4; p++)
        {
            if (s.Groups.Committed("h", new TopicPartition("t", p)) != 56 + p)
            {
                problems.Add($"h/{p} committed {s.Groups.Committed("h", new TopicPartition("t", p))}");
            }
        }

        if (_deletedAtImage && s.Groups.Committed("d", new TopicPartition("gone", 0)) is { } d)
        {
            problems.Add($"d committed {d} on a deleted topic");
        }

        return problems;
    }, beforeImage: () =>
    {
        _plainAckedAtImage = _plainAcked;
        _deletedAtImage = _deleted;
    });

    // The coordinator log restated at open (live: false) or while the store runs (live: true).
    private static Task Restatement(DurabilityMode mode, bool live = false) => RunAsync(live ? "live restate" : "restate", async store =>
    {
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        Producer p = await Tx.TransactionalAsync(store, "tx");
        for (int i = 0; i < 60; i++)
        {
            p.BeginTransaction();
            await p.ProduceAsync(tp, Tx.Msg("v" + i));
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

        for (int i = 0; i < GroupCommits; i++)
        {
            await store.Groups.CommitAsync("g2", [new TopicPartitionOffset(tp, i)]);
        }

        await p.DisposeAsync();
        Producer idem = await store.CreateProducerAsync();
        await idem.DisposeAsync();
        await store.FlushAsync();
    }, (store, options) =>
    {
        if (live)
        {
            store.Coordinator.LiveRestateSlack = 10;
            Assert.That(store.Coordinator.RestateIfGrown(), Is.True, "the history is restated");
            return Task.CompletedTask;
        }

        store.Dispose();
        using LogStore again = LogStore.Open(store.Directory, options);
        return Task.CompletedTask;
    }, s =>
    {
        var problems = new List<string>();
        var tp = new TopicPartition("t", 0);
        if (s.Groups.Committed("g1", tp) != 58)
        {
            problems.Add($"g1 committed {s.Groups.Committed("g1", tp)}");
        }

        if (s.Groups.Committed("g2", tp) != GroupCommits - 1)
        {
            problems.Add($"g2 committed {s.Groups.Committed("g2", tp)}");
        }

        var tx = s.ListTransactions().Single(t => t.TransactionalId == "tx");
        Producer idem = s.CreateProducerAsync().AsTask().GetAwaiter().GetResult();
        if (idem.ProducerId <= tx.ProducerId + 1)
        {
            problems.Add($"producer id {idem.ProducerId} reused (tx has {tx.ProducerId})");
        }

        Producer again = Tx.TransactionalAsync(s, "tx").GetAwaiter().GetResult();
        if (again.Epoch <= tx.Epoch || again.ProducerId != tx.ProducerId)
        {
            problems.Add($"epoch {again.Epoch} pid {again.ProducerId}");
        }

        List<string> rc = Tx.Values(s.GetPartition("t", 0), IsolationLevel.ReadCommitted);
        if (rc.Count != 30)
        {
            problems.Add($"rc count {rc.Count}");
        }

        return problems;
    }, mode);
}
