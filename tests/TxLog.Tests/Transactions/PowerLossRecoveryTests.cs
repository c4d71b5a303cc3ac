using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Transactions;

/// <summary>Power-loss images against recovery itself: a decision without its data, a crash during a clean open, a re-created topic, a large restatement.</summary>
public class PowerLossRecoveryTests
{
    // 1. A durable PrepareCommit whose data is missing on one partition: recovery's ABORT marker there
    //    is refused as "contradicting" the producer's previous COMMIT of the same epoch; open throws.
    [Test]
    public async Task A_durable_decision_whose_data_is_missing_on_a_partition_opens_and_aborts_after_a_power_loss()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        LogStoreOptions options = fs.StoreOptions(DurabilityMode.GroupCommit);
        char sep = Path.DirectorySeparatorChar;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            await using Producer p = await Tx.TransactionalAsync(store, "tx");

            // T1: an ordinary committed transaction of this producer epoch, everything durable.
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("a1"));
            await p.ProduceAsync(new TopicPartition("b", 0), Tx.Msg("b1"));
            await p.CommitTransactionAsync();
            await store.FlushAsync();

            // T2: its data fsync on a-0 is held; the PrepareCommit record (fsynced in parallel) reaches the disk.
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("a2"));
            await p.ProduceAsync(new TopicPartition("b", 0), Tx.Msg("b2"));
            fs.HoldSyncs(path => path.Contains($"{sep}a-0{sep}", StringComparison.Ordinal));
            Task commit;
            try
            {
                commit = p.CommitTransactionAsync();
                LogPartition state = store.GetPartition(TransactionCoordinator.TopicName, 0);
                var waited = System.Diagnostics.Stopwatch.StartNew();
                while (state.Log.DurableOffset < state.LogEndOffset && waited.Elapsed < TimeSpan.FromSeconds(10))
                {
                    await Task.Delay(5);
                }

                Assert.That(state.Log.DurableOffset, Is.EqualTo(state.LogEndOffset), "the decision is durable");
                Assert.That(commit.IsCompleted, Is.False, "not acknowledged: a-0's data fsync is held");
                fs.CopyDurableImage(dir.Path, image.Path); // power loss: decision durable, a2 not
            }
            finally
            {
                fs.ReleaseSyncs();
            }

            await commit;
        }

        // Recovery must abort T2 everywhere (its data is missing on a-0) and open.
        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        Assert.That(Tx.Values(recovered.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "a1" }));
        Assert.That(Tx.Values(recovered.GetPartition("b", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1" }));
    }

    // 2. An ABORT marker written by recovery during a CLEAN open: its .txnindex entry is never fsynced
    //    nor rebuilt if power fails before the open removes .clean_shutdown; two clean opens later the
    //    aborted record is read-committed visible.
    private sealed class BeforeDeleteHook(IFileSystem inner) : DelegatingFileSystem(inner)
    {
        public Func<string, bool>? Match;
        public Action? Action;

        public override void DeleteFile(string path)
        {
            if (Match is { } m && m(path) && Action is { } a)
            {
                (Match, Action) = (null, null);
                a();
            }

            base.DeleteFile(path);
        }
    }

    [Test]
    public async Task An_abort_marker_written_by_a_clean_open_keeps_its_txnindex_entry_after_a_power_loss_during_the_open()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        LogStoreOptions o1 = Tx.Options(DurabilityMode.GroupCommit);
        o1.PreallocateBytes = 0;
        LogStore store = LogStore.Open(dir.Path, o1);
        store.CreateTopic("t");
        Producer p = await Tx.TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("t", 0), Tx.Msg("aborted"));
        store.Dispose(); // clean close with the transaction still open

        var powerLoss = new PowerLossFileSystem();
        var hook = new BeforeDeleteHook(powerLoss)
        {
            Match = path => path.EndsWith(LogStore.CleanShutdownFileName, StringComparison.Ordinal),
        };
        hook.Action = () => powerLoss.CopyDurableImage(dir.Path, image.Path);
        LogStoreOptions o2 = Tx.Options(DurabilityMode.GroupCommit);
        o2.PreallocateBytes = 0;
        o2.FileSystem = hook;
        using (LogStore reopened = LogStore.Open(dir.Path, o2))
        {
            Assert.That(reopened.Recovery.Actions, Has.Some.Contains("aborted the undecided"));
        }

        // The image: power lost during that open, just before it removed the clean-shutdown marker.
        using (LogStore third = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit)))
        {
            Assert.That(third.Recovery.CleanShutdown, Is.True);
            Assert.That(Tx.Values(third.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.Empty, "third open");
        }

        using LogStore fourth = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        Assert.That(Tx.Values(fourth.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.Empty, "the aborted record shows up read-committed");
    }

    // Topics a and b; one acknowledged transaction "tx" over both (a1, b1).
    private static async Task<Producer> CommitA1B1Async(LogStore store)
    {
        store.CreateTopic("a");
        store.CreateTopic("b");
        Producer p = await Tx.TransactionalAsync(store, "tx");
        await store.FlushAsync();
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("a1"));
        await p.ProduceAsync(new TopicPartition("b", 0), Tx.Msg("b1"));
        await p.CommitTransactionAsync();
        return p;
    }

    // 3a. Recovery matched a PrepareCommit's partitions by name: a topic deleted and created again
    //     looked like "data missing", and the acknowledged commit was aborted on the other partitions.
    [Test]
    public async Task Recreating_a_deleted_topic_of_an_acknowledged_commit_does_not_abort_it_after_a_power_loss()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        using (LogStore store = LogStore.Open(dir.Path, fs.StoreOptions()))
        {
            await using Producer p = await CommitA1B1Async(store); // b's marker and the CompleteCommit record are not durable
            store.DeleteTopic("a");
            store.CreateTopic("a"); // a new, empty topic of the same name
            fs.CopyDurableImage(dir.Path, image.Path);
        }

        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        LogPartition b = recovered.GetPartition("b", 0);
        await b.FlushAsync();
        Assert.That(Tx.Values(b, IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1" }),
            "the acknowledged commit survives on b; recovery: " + string.Join(" | ", recovered.Recovery.Actions));
    }

    // 3b. Same root cause, unconfirmed-commit path: the lost-COMMIT-marker repair committed a later,
    //     never-committed transaction of the same producer id in the recreated topic.
    [Test]
    public async Task An_open_transaction_in_a_recreated_topic_is_not_committed_by_recovery_of_an_older_commit()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        using (LogStore store = LogStore.Open(dir.Path, fs.StoreOptions()))
        {
            await using Producer p = await CommitA1B1Async(store); // its completion record names it as unconfirmed
            await store.GetPartition(TransactionCoordinator.TopicName, 0).FlushAsync(); // ... and is durable; b's marker is not
            store.DeleteTopic("a");
            store.CreateTopic("a");

            // The same transactional id (same producer id, next epoch) writes to the new topic and never commits.
            await using Producer p2 = await Tx.TransactionalAsync(store, "tx");
            p2.BeginTransaction();
            await p2.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("never committed"));
            await store.GetPartition("a", 0).FlushAsync();
            fs.CopyDurableImage(dir.Path, image.Path);
        }

        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        string actions = string.Join(" | ", recovered.Recovery.Actions);
        Assert.That(Tx.Values(recovered.GetPartition("b", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "b1" }), actions);
        Assert.That(Tx.Values(recovered.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.Empty,
            "the never-committed transaction was committed by recovery: " + actions);
    }

    // 4. The consumer-offsets restatement at open appends every committed offset as ONE batch: past
    //    MaxBatchBytes, Open throws every time (no power loss needed).
    [Test]
    public async Task A_store_whose_consumer_offsets_restatement_exceeds_one_batch_still_opens()
    {
        using var dir = new TempDirectory();
        var tp = new TopicPartition("t", 0);
        using (LogStore store = LogStore.Open(dir.Path, Tx.Options(DurabilityMode.None)))
        {
            store.CreateTopic("t");
            for (int g = 0; g < 1100; g++)
            {
                using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = g.ToString("D5") + new string('g', 995) });
                c.Assign(tp);
                await c.Commit([new TopicPartitionOffset(tp, 1)]);
            }

            using Consumer busy = store.CreateConsumer(new ConsumerOptions { GroupId = "busy" });
            busy.Assign(tp);
            for (int i = 0; i < 11_500; i++)
            {
                await busy.Commit([new TopicPartitionOffset(tp, i)]);
            }
        }

        using LogStore reopened = LogStore.Open(dir.Path, Tx.Options(DurabilityMode.None));
        using Consumer check = reopened.CreateConsumer(new ConsumerOptions { GroupId = "busy" });
        Assert.That(check.Committed(tp), Is.EqualTo(11_499));
    }
}
