using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>Power-loss regressions (images of only the fsynced bytes, see PowerLossFileSystem).</summary>
public class PowerLossRegressionTests
{
    /// <summary>Runs an action once, when a file matching a predicate is first opened (before its caller writes it).</summary>
    private sealed class FirstOpenHook(IFileSystem inner) : DelegatingFileSystem(inner)
    {
        private Func<string, bool>? _match;
        private Action? _action;

        public bool Fired { get; private set; }

        public void Arm(Func<string, bool> match, Action action) => (_match, _action) = (match, action);

        protected override IStorageFile WrapFile(string path, IStorageFile file)
        {
            if (_match is { } match && match(path) && _action is { } action)
            {
                (_match, _action) = (null, null);
                Fired = true;
                action();
            }

            return file;
        }
    }

    [Test]
    public async Task An_abort_marker_that_races_a_checkpoint_roll_of_the_redo_log_stays_aborted_after_a_power_loss()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var powerLoss = new PowerLossFileSystem();
        var fs = new FirstOpenHook(powerLoss);
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.PreallocateBytes = 0;
        options.SegmentBytes = 2048; // the redo log rolls by size too (a producer snapshot at each such roll)
        options.FileSystem = fs;
        var mvcc = new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue / 2, LockTimeout = TimeSpan.FromMilliseconds(200) };
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("events");
            TransactionEngine engine = store.OpenTransactionEngine(mvcc);
            TransactionalMap<int, string> map = engine.OpenMap("m", Serializers.Int32, Serializers.String);
            using (MvccTransaction tx = engine.BeginTransaction())
            {
                map.Put(tx, 0, "base");
                await tx.CommitAsync();
            }

            // A unified transaction whose redo is written (PrepareUnified) and which is then aborted: a
            // second producer with the same transactional id fences it just before its commit.
            await using Producer doomed = await TransactionalAsync(store, "tx");
            StoreTransaction u = store.BeginTransaction(doomed);
            map.Put(u.Maps, 1, "ABORTED");
            await u.ProduceAsync(new TopicPartition("events", 0), Msg("aborted event"));
            string redoDir = Path.DirectorySeparatorChar + TransactionEngine.RedoTopic + "-0" + Path.DirectorySeparatorChar;
            Producer? fencer = null;
            Task? checkpoint = null;
            store.Coordinator.StepHook = step =>
            {
                if (step != "prepare" || fencer is not null)
                {
                    return;
                }

                // The fencer's ABORT marker lands in the redo log; before its .txnindex entry is written
                // (after the marker), a checkpoint on another thread rolls the redo log. Before the fix
                // the roll went ahead at once and fsynced the segment's .txnindex for the last time
                // without the entry; now it waits for the append to finish (the wait below times out).
                fs.Arm(p => p.Contains(redoDir, StringComparison.Ordinal) && p.EndsWith(".txnindex", StringComparison.Ordinal),
                    () =>
                    {
                        checkpoint = Task.Run(async () => await engine.CheckpointAsync());
                        checkpoint.Wait(TimeSpan.FromMilliseconds(500));
                    });
                fencer = TransactionalAsync(store, "tx").GetAwaiter().GetResult();
            };
            Assert.ThrowsAsync<ProducerFencedException>(() => u.CommitAsync());
            store.Coordinator.StepHook = null;
            Assert.That(fs.Fired, Is.True, "a checkpoint raced the ABORT marker and its index entry");
            await checkpoint!;

            for (int i = 0; i < 30; i++)
            {
                using MvccTransaction tx = engine.BeginTransaction();
                map.Put(tx, 100 + i, new string('x', 400));
                await tx.CommitAsync();
            }

            using (MvccTransaction live = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                Assert.That(map.ContainsKey(live, 1), Is.False, "live: aborted");
            }

            await store.FlushAsync();
            powerLoss.CopyDurableImage(dir.Path, image.Path); // a plain copy (kill -9) passes
            await fencer!.DisposeAsync();
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        TransactionEngine e2 = recovered.OpenTransactionEngine(mvcc);
        TransactionalMap<int, string> m2 = e2.OpenMap("m", Serializers.Int32, Serializers.String);
        using MvccTransaction read = e2.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(m2.Get(read, 0), Is.EqualTo("base"));
        Assert.That(m2.ContainsKey(read, 1), Is.False, "the aborted unified transaction's map write reappeared; " + e2.RecoverySummary);
    }

    [Test]
    public async Task Deleting_one_topic_of_an_acknowledged_commit_does_not_abort_it_on_the_others_after_a_power_loss()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        LogStoreOptions options = fs.StoreOptions(); // Periodic, no background flushes
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            await using Producer p = await TransactionalAsync(store, "tx");
            await store.FlushAsync();
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("a", 0), Msg("a1"));
            await p.ProduceAsync(new TopicPartition("b", 0), Msg("b1"));
            await p.CommitTransactionAsync(); // acknowledged: data of a and b and the PrepareCommit are durable
            store.DeleteTopic("a");
            fs.CopyDurableImage(dir.Path, image.Path);
        }

        using LogStore recovered = LogStore.Open(image.Path, Options(DurabilityMode.GroupCommit));
        LogPartition b = recovered.GetPartition("b", 0);
        await b.FlushAsync();
        Assert.That(Values(b, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1" }),
            "the acknowledged commit survives on b; recovery: " + string.Join(" | ", recovered.Recovery.Actions));
    }

    [Test]
    public async Task A_topic_cannot_be_deleted_while_a_transaction_on_it_is_completing_and_the_commit_still_succeeds()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("a");
        store.CreateTopic("b");
        await using Producer p = await TransactionalAsync(store, "tx");
        Exception? refused = null;
        store.Coordinator.StepHook = s =>
        {
            if (s == "decided")
            {
                refused = Assert.Catch(() => store.DeleteTopic("a"));
            }
        };
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("a1"));
        await p.ProduceAsync(new TopicPartition("b", 0), Msg("b1"));
        await p.CommitTransactionAsync();
        store.Coordinator.StepHook = null;
        Assert.That(refused, Is.InstanceOf<InvalidTransactionStateException>().And.Message.Contains("'a'"));

        // Open (not yet committed) is refused too; once finished, the topic can go.
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("a2"));
        Assert.Throws<InvalidTransactionStateException>(() => store.DeleteTopic("a"));
        await p.AbortTransactionAsync();
        store.DeleteTopic("a");

        LogPartition b = store.GetPartition("b", 0);
        await b.FlushAsync();
        Assert.That(Values(b, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1" }));
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("b", 0), Msg("b2"));
        await p.CommitTransactionAsync();
        await b.FlushAsync();
        Assert.That(Values(b, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1", "b2" }), "the id goes on normally");
    }

    [Test]
    public async Task A_transaction_cannot_start_writing_to_a_topic_while_it_is_being_deleted()
    {
        using var dir = new TempDirectory();
        var fs = new PowerLossFileSystem();
        LogStoreOptions options = fs.StoreOptions(); // Periodic, no background flushes
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        store.CreateTopic("a");
        await using Producer p = await TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("a1"));
        await p.CommitTransactionAsync(); // leaves an unsynced completion record for DeleteTopic's barrier to fsync

        LogPartition target = store.GetPartition("t", 0); // a producer that looked t-0 up just before the delete

        // DeleteTopic("t") stops in its barrier's fsync of the coordinator log, after its scan (it holds
        // the store's topic lock meanwhile, so the producer's own lookup would wait: the coordinator's
        // step that follows the lookup is called directly).
        char sep = Path.DirectorySeparatorChar;
        fs.HoldSyncs(path => path.Contains($"{sep}__transaction_state-0{sep}", StringComparison.Ordinal));
        Task delete;
        try
        {
            delete = Task.Run(() => store.DeleteTopic("t"));
            Assert.That(fs.WaitForHeldSync(TimeSpan.FromSeconds(10)), Is.True, "the delete reached its barrier");
            Coordination.TransactionDescription tx = store.Coordinator.ListTransactions().Single(d => d.TransactionalId == "tx");
            Assert.Throws<TopicNotFoundException>(() => store.Coordinator.AddPartition("tx", tx.ProducerId, tx.Epoch, new TopicPartition("t", 0), target));
        }
        finally
        {
            fs.ReleaseSyncs();
        }

        await delete;
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("a2"));
        await p.CommitTransactionAsync(); // the id is not stuck on the deleted topic
        await store.GetPartition("a", 0).FlushAsync();
        Assert.That(Values(store.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "a1", "a2" }));
    }
}
