using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Mvcc;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Mvcc;

/// <summary>Regressions found by a bug hunt (each test failed before its fix): committed map data lost or dropped data resurrected across reopens.</summary>
public class RedoRecoveryRegressionTests
{
    private static MvccOptions Opts(LogSyncMode mode = LogSyncMode.Instant) => new() { SyncMode = mode, CheckpointInterval = null, LockTimeout = TimeSpan.FromMilliseconds(300) };

    // Was: a multi-batch transaction cut before its last batch is dropped, but its commit ts is reused
    // by the next commit after reopen; the second recovery merges the two by ts and resurrects it.
    [Test]
    public void A_transaction_cut_before_its_last_redo_batch_stays_dropped_after_a_later_commit_and_reopen()
    {
        using var dir = new TempDirectory();
        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            var big = f.Engine.OpenMap("big", Serializers.Int32, Serializers.Bytes);
            using MvccTransaction tx = f.Begin(TransactionIsolation.ReadCommitted);
            for (int k = 0; k < 3000; k++)
            {
                big.Put(tx, k, new byte[1000]);
            }

            tx.Commit();
        }

        // Crash between the transaction's batch appends: its last batch never reached the file.
        string redo = Directory.GetFiles(Path.Combine(dir.Path, TransactionEngine.RedoTopic + "-0"), "*.log").Order().Last();
        (long lastBatch, long _) = RedoFiles.LastBatch(File.ReadAllBytes(redo));
        File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName));
        using (var s = new FileStream(redo, FileMode.Open))
        {
            s.SetLength(lastBatch);
        }

        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            var big = f.Engine.OpenMap("big", Serializers.Int32, Serializers.Bytes);
            using (MvccTransaction check = f.Begin(TransactionIsolation.RepeatableRead))
            {
                Assert.That(big.Count(check), Is.Zero, "dropped at the first recovery");
            }

            f.PutAll(0, 1, 1); // an unrelated small commit
        }

        using var again = new EngineFixture(Opts(), dir.Path);
        var big2 = again.Engine.OpenMap("big", Serializers.Int32, Serializers.Bytes);
        using MvccTransaction check2 = again.Begin(TransactionIsolation.RepeatableRead);
        Assert.That(big2.Count(check2), Is.Zero, "the torn transaction must never reappear: " + again.Engine.RecoverySummary);
        Assert.That(again.ReadAll(), Has.Count.EqualTo(1));
    }

    // Was: store-wide retention applied to the internal redo partition and deleted committed data.
    [Test]
    public void Store_retention_never_deletes_the_internal_redo()
    {
        using var dir = new TempDirectory();
        var storeOptions = new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 4096, RetentionBytes = 4096 };
        using (LogStore store = LogStore.Open(dir.Path, storeOptions))
        {
            TransactionEngine engine = store.OpenTransactionEngine(Opts());
            var map = engine.OpenMap("m", Serializers.Int32, Serializers.Bytes);
            for (int i = 0; i < 20; i++)
            {
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
                map.Put(tx, i, new byte[1000]);
                tx.Commit();
            }

            store.EnforceRetention();
        }

        using LogStore reopened = LogStore.Open(dir.Path, storeOptions);
        TransactionEngine e2 = reopened.OpenTransactionEngine(Opts());
        var m2 = e2.OpenMap("m", Serializers.Int32, Serializers.Bytes);
        using MvccTransaction read = e2.BeginTransaction(TransactionIsolation.RepeatableRead);
        Assert.That(m2.Count(read), Is.EqualTo(20), "committed map data lost: " + e2.RecoverySummary);
    }

    [Test]
    public void A_committed_transaction_near_the_redo_batch_limit_survives_reopen()
    {
        using var dir = new TempDirectory();
        var opts = new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null };
        var expected = new Dictionary<string, int>();
        using (var f = new EngineFixture(opts, dir.Path))
        {
            for (int n = 990; n <= 1030; n += 2)
            {
                string name = $"m{n:D4}";
                var map = f.Engine.OpenMap(name, Serializers.Int32, Serializers.Bytes);
                using MvccTransaction tx = f.Begin(TransactionIsolation.ReadCommitted);
                for (int k = 0; k < n; k++)
                {
                    map.Put(tx, k, new byte[1000]);
                }

                tx.Commit();
                expected[name] = n;
            }
        }

        using var r = new EngineFixture(opts, dir.Path);
        var actual = new Dictionary<string, int>();
        foreach (string name in expected.Keys)
        {
            var map = r.Engine.OpenMap(name, Serializers.Int32, Serializers.Bytes);
            using MvccTransaction tx = r.Begin(TransactionIsolation.RepeatableRead);
            actual[name] = (int)map.Count(tx);
        }

        Assert.That(actual, Is.EqualTo(expected), r.Engine.RecoverySummary + " lost: " + string.Join(",", actual.Where(p => p.Value != expected[p.Key]).Select(p => $"{p.Key}={p.Value}")));
    }
}
