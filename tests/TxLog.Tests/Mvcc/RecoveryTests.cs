using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Mvcc;

public class RecoveryTests
{
    private static MvccOptions Opts(LogSyncMode mode = LogSyncMode.Instant) => new() { SyncMode = mode, CheckpointInterval = null, LockTimeout = TimeSpan.FromSeconds(1) };

    [Test]
    public void Committed_data_survives_a_clean_reopen_and_rolled_back_data_does_not()
    {
        using var dir = new TempDirectory();
        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            f.PutAll(0, 100, 2);
            using MvccTransaction rolledBack = f.Begin(TransactionIsolation.ReadCommitted);
            f.Map.Put(rolledBack, 1000, 1);
            rolledBack.Rollback();
            using MvccTransaction delete = f.Begin(TransactionIsolation.ReadCommitted);
            f.Map.Remove(delete, 5);
            delete.Commit();
        }

        using var reopened = new EngineFixture(Opts(), dir.Path);
        Dictionary<int, int> all = reopened.ReadAll();
        Assert.That(all, Has.Count.EqualTo(99));
        Assert.That(all.ContainsKey(5) || all.ContainsKey(1000), Is.False);
        Assert.That(all[42], Is.EqualTo(84));
        Assert.That(reopened.Engine.RecoverySummary, Does.Contain("replayed 2 committed transactions"));
    }

    [Test]
    public void A_transaction_larger_than_a_batch_is_split_and_recovered_whole()
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
            Assert.That(f.Store.GetPartition(TransactionEngine.RedoTopic, 0).LogEndOffset, Is.EqualTo(3000 + 3), "three batches, each with its transaction header");
        }

        // Without its last batch the transaction must vanish entirely.
        using var image = new TempDirectory();
        TestRecords.CopyImage(dir.Path, image.Path);
        string redo = Directory.GetFiles(Path.Combine(image.Path, TransactionEngine.RedoTopic + "-0"), "*.log").Order().Last();
        (long lastBatch, long _) = RedoFiles.LastBatch(File.ReadAllBytes(redo));
        File.Delete(Path.Combine(image.Path, LogStore.CleanShutdownFileName));
        using (var s = new FileStream(redo, FileMode.Open))
        {
            s.SetLength(lastBatch);
        }

        using (var whole = new EngineFixture(Opts(), dir.Path))
        {
            var big = whole.Engine.OpenMap("big", Serializers.Int32, Serializers.Bytes);
            using MvccTransaction check = whole.Begin(TransactionIsolation.RepeatableRead);
            Assert.That(big.Count(check), Is.EqualTo(3000));
        }

        using var torn = new EngineFixture(Opts(), image.Path);
        var tornMap = torn.Engine.OpenMap("big", Serializers.Int32, Serializers.Bytes);
        using MvccTransaction tornCheck = torn.Begin(TransactionIsolation.RepeatableRead);
        Assert.That(tornMap.Count(tornCheck), Is.Zero);
    }

    [Test]
    public async Task A_checkpoint_is_used_at_recovery_and_the_redo_it_covers_is_deleted()
    {
        using var dir = new TempDirectory();
        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            for (int round = 0; round < 5; round++)
            {
                f.PutAll(round * 100, (round + 1) * 100, 3);
            }

            await f.Engine.CheckpointAsync();
            f.PutAll(1000, 1010, 3); // after the first checkpoint
            await f.Engine.CheckpointAsync();
            f.PutAll(2000, 2005, 3); // only in the redo
            Assert.That(f.Store.GetPartition(TransactionEngine.RedoTopic, 0).LogStartOffset, Is.GreaterThan(0), "redo before the older kept checkpoint is gone");
        }

        Assert.That(Directory.GetFiles(Path.Combine(dir.Path, "mvcc"), "*.ckpt"), Has.Length.EqualTo(2));
        using var reopened = new EngineFixture(Opts(), dir.Path);
        Assert.That(reopened.Engine.RecoverySummary, Does.StartWith("checkpoint at ts"));
        Assert.That(reopened.Engine.RecoverySummary, Does.Contain("replayed 1 committed transactions"));
        Dictionary<int, int> all = reopened.ReadAll();
        Assert.That(all, Has.Count.EqualTo(515));
        Assert.That(all[2004], Is.EqualTo(6012));
        Assert.That(all[1009], Is.EqualTo(3027));
    }

    [Test]
    public async Task A_corrupt_newest_checkpoint_falls_back_to_the_older_one_plus_redo()
    {
        using var dir = new TempDirectory();
        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            f.PutAll(0, 50, 1);
            await f.Engine.CheckpointAsync();
            f.PutAll(50, 100, 1);
            await f.Engine.CheckpointAsync();
            f.PutAll(100, 110, 1);
        }

        string newest = Directory.GetFiles(Path.Combine(dir.Path, "mvcc"), "*.ckpt").Order().Last();
        byte[] bytes = File.ReadAllBytes(newest);
        bytes[bytes.Length / 2] ^= 0x10;
        File.WriteAllBytes(newest, bytes);

        using var reopened = new EngineFixture(Opts(), dir.Path);
        Assert.That(reopened.Engine.RecoverySummary, Does.Contain("skipped corrupt"));
        Assert.That(reopened.ReadAll(), Has.Count.EqualTo(110));
    }

    [Test]
    public void A_torn_redo_tail_drops_only_the_last_transaction_and_recovery_is_idempotent()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (var f = new EngineFixture(Opts(), dir.Path))
        {
            f.PutAll(0, 10, 1);
            f.PutAll(10, 20, 1);
            CopyImage(dir.Path, image.Path);
        }

        // Cut the last redo batch in half, as a crash during its write would.
        string redo = Directory.GetFiles(Path.Combine(image.Path, TransactionEngine.RedoTopic + "-0"), "*.log").Order().Last();
        (long lastBatch, long lastEnd) = RedoFiles.LastBatch(File.ReadAllBytes(redo));
        File.Delete(Path.Combine(image.Path, LogStore.CleanShutdownFileName));
        using (var s = new FileStream(redo, FileMode.Open))
        {
            s.SetLength(lastBatch + ((lastEnd - lastBatch) / 2));
        }

        Dictionary<int, int> first;
        using var second = new TempDirectory();
        using (var recovered = new EngineFixture(Opts(), image.Path))
        {
            first = recovered.ReadAll();
            Assert.That(first.Keys.Order(), Is.EqualTo(Enumerable.Range(0, 10)), "the torn transaction is all gone");

            // Crash again right after recovery (no clean close) and recover again: same state.
            CopyImage(image.Path, second.Path);
        }

        using var again = new EngineFixture(Opts(), second.Path);
        Assert.That(again.ReadAll(), Is.EqualTo(first));
    }

    [Test]
    public async Task A_long_repeatable_read_transaction_keeps_its_snapshot_through_checkpoint_and_garbage_collection()
    {
        using var f = new EngineFixture(Opts(LogSyncMode.NoSync));
        f.PutAll(0, 10, 1);
        using MvccTransaction longReader = f.Begin(TransactionIsolation.RepeatableRead);
        Assert.That(f.Map.Get(longReader, 3), Is.EqualTo(3));
        for (int round = 2; round < 6; round++)
        {
            f.PutAll(0, 10, round);
        }

        using (MvccTransaction delete = f.Begin(TransactionIsolation.ReadCommitted))
        {
            f.Map.Remove(delete, 4);
            delete.Commit();
        }

        await f.Engine.CheckpointAsync();
        f.Engine.CollectGarbage();
        Assert.That(f.Map.Get(longReader, 3), Is.EqualTo(3), "its version was kept");
        Assert.That(f.Map.Get(longReader, 4), Is.EqualTo(4), "the deleted row is still visible to it");
        Assert.That(f.Read(3), Is.EqualTo(15));
        longReader.Commit();

        Assert.That(f.Engine.CollectGarbage(), Is.EqualTo(1), "now the deleted row can go");
        Assert.That(f.Read(4), Is.EqualTo(-1));
    }

    [Test]
    public void Instant_mode_acknowledges_after_the_redo_fsync_and_concurrent_commits_share_fsyncs()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, FileSystem = fs, PreallocateBytes = 0 });
        TransactionEngine engine = store.OpenTransactionEngine(Opts(LogSyncMode.Instant));
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        int before = fs.LogSyncs;
        LogPartition redo = store.GetPartition(TransactionEngine.RedoTopic, 0);
        long redoStart = redo.LogEndOffset;
        fs.BlockSyncs();
        var commits = new List<Task>();
        for (int i = 0; i < 8; i++)
        {
            int k = i;
            commits.Add(Task.Run(async () =>
            {
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
                map.Put(tx, k, k);
                await tx.CommitAsync();
            }));
        }

        Assert.That(fs.WaitForBlockedSync(TxLog.Tests.Transactions.Tx.Timeout), Is.True);
        Assert.That(SpinWait.SpinUntil(() => redo.LogEndOffset == redoStart + 16, TxLog.Tests.Transactions.Tx.Timeout), Is.True, "all eight wrote their redo (header + one write each)");
        Assert.That(commits.Any(c => c.IsCompleted), Is.False, "no commit is acknowledged before its fsync");
        fs.Release();
        Assert.That(Task.WaitAll(commits.ToArray(), TxLog.Tests.Transactions.Tx.Timeout), Is.True);
        Assert.That(fs.LogSyncs - before, Is.LessThan(8), "commits shared fsyncs");
    }

    [Test]
    public void Periodic_mode_acknowledges_before_the_fsync_and_applies_backpressure_past_the_backlog()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, FileSystem = fs, PreallocateBytes = 0 });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Periodic, SyncInterval = TimeSpan.FromHours(1), MaxPendingCommits = 3, CheckpointInterval = null });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        fs.BlockSyncs();
        for (int i = 0; i < 3; i++)
        {
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(tx, i, i);
            Assert.That(tx.CommitAsync().IsCompleted, Is.True, $"commit {i} acknowledged without an fsync");
        }

        Task fourth = Task.Run(() =>
        {
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(tx, 3, 3);
            tx.Commit();
        });
        Assert.That(fs.WaitForBlockedSync(TxLog.Tests.Transactions.Tx.Timeout), Is.True, "the fourth commit forced an fsync");
        Assert.That(fourth.IsCompleted, Is.False, "and waits for it: backpressure");
        fs.Release();
        Assert.That(fourth.Wait(TxLog.Tests.Transactions.Tx.Timeout), Is.True);
    }
}
