using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Recovery of a durable PrepareCommit writes its COMMIT marker only where the producer still has THAT
/// transaction open: a later, undecided transaction of the same producer open on one partition must
/// be aborted, not committed with the decided one.
/// </summary>
public class RecoveryMarkerScopeTests
{
    [Test]
    public async Task Recovery_of_a_decided_commit_does_not_commit_the_next_undecided_transaction_of_the_producer()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();

        LogStoreOptions options = fs.StoreOptions(); // Periodic, no background flushes
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            await using Producer p = await Tx.TransactionalAsync(store, "tx");

            // T1: committed. Durable: its data and its PrepareCommit (the decision). Page cache only:
            // its COMMIT markers on a-0 and b-0 and its CompleteCommit record.
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("t1"));
            await p.ProduceAsync(new TopicPartition("b", 0), Tx.Msg("t1"));
            await p.CommitTransactionAsync();

            // T2: written, never committed. a-0 alone is fsynced (as another committer's data fsync, or
            // the first half of T2's own commit round, would do): T1's marker and T2's data there are durable.
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("a", 0), Tx.Msg("t2"));
            await p.ProduceAsync(new TopicPartition("b", 0), Tx.Msg("t2"));
            await store.GetPartition("a", 0).FlushAsync();

            fs.CopyDurableImage(dir.Path, image.Path); // power loss now
            await p.AbortTransactionAsync();
        }

        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        string actions = string.Join(" | ", recovered.Recovery.Actions);
        List<string> a = Tx.Values(recovered.GetPartition("a", 0), IsolationLevel.ReadCommitted);
        List<string> b = Tx.Values(recovered.GetPartition("b", 0), IsolationLevel.ReadCommitted);
        Assert.That(b, Is.EqualTo(new[] { "t1" }), actions);
        Assert.That(a, Is.EqualTo(new[] { "t1" }), "T2 was never decided (and is missing on b-0): it must be aborted on a-0. " + actions);
    }

    [Test]
    public async Task Recovery_markers_written_before_the_completeness_check_do_not_stand_in_for_missing_data()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        var fs = new PowerLossFileSystem();
        LogStoreOptions options = Tx.Options(DurabilityMode.Periodic);
        options.FlushInterval = TimeSpan.FromHours(1); // only commits fsync (data and decision); markers stay unsynced
        options.FileSystem = fs;
        options.PreallocateBytes = 0;
        char sep = Path.DirectorySeparatorChar;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("a");
            store.CreateTopic("b");
            await using Producer r = await Tx.TransactionalAsync(store, "r");
            await using Producer p = await Tx.TransactionalAsync(store, "p");
            var a0 = new TopicPartition("a", 0);
            var b0 = new TopicPartition("b", 0);

            // R: committed; its data (a@0, b@0) and decision are durable. Right after its decision, before
            // its markers, P writes p1 (a@1, b@1); R's markers follow (a@2, b@2), in the page cache only.
            r.BeginTransaction();
            await r.ProduceAsync(a0, Tx.Msg("r1"));
            await r.ProduceAsync(b0, Tx.Msg("r1"));
            p.BeginTransaction();
            bool once = false;
            store.Coordinator.StepHook = step =>
            {
                if (step == "decided" && !once)
                {
                    once = true;
                    p.ProduceAsync(a0, Tx.Msg("p1")).AsTask().GetAwaiter().GetResult();
                    p.ProduceAsync(b0, Tx.Msg("p1")).AsTask().GetAwaiter().GetResult();
                }
            };
            await r.CommitTransactionAsync();
            store.Coordinator.StepHook = null;

            // P commits: its decision (with R's CompleteCommit before it) and a-0 become durable; b-0's
            // fsync is held, so p1 on b-0 (and R's marker there) never reach the disk: P is not acknowledged.
            fs.HoldSyncs(path => path.Contains($"{sep}b-0{sep}", StringComparison.Ordinal));
            Task commit;
            try
            {
                commit = p.CommitTransactionAsync();
                LogPartition state = store.GetPartition(TransactionCoordinator.TopicName, 0);
                LogPartition a = store.GetPartition("a", 0);
                var waited = System.Diagnostics.Stopwatch.StartNew();
                while ((state.Log.DurableOffset < state.LogEndOffset || a.Log.DurableOffset < a.LogEndOffset) && waited.Elapsed < TimeSpan.FromSeconds(10))
                {
                    await Task.Delay(5);
                }

                Assert.That(state.Log.DurableOffset, Is.EqualTo(state.LogEndOffset), "P's decision is durable");
                Assert.That(a.Log.DurableOffset, Is.EqualTo(a.LogEndOffset), "a-0 is durable");
                Assert.That(commit.IsCompleted, Is.False, "P is not acknowledged: b-0's data fsync is held");
                fs.CopyDurableImage(dir.Path, image.Path); // power loss: b-0 holds only r1
            }
            finally
            {
                fs.ReleaseSyncs();
            }

            await commit;
        }

        // P's data is missing on b-0: recovery must abort P everywhere. Recovery first writes R's lost
        // COMMIT marker on b-0 (R's CompleteCommit lists it as unconfirmed), which takes offset 1 — P's
        // recorded last offset there — so b-0's log end no longer tells that p1 is missing.
        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        string actions = string.Join(" | ", recovered.Recovery.Actions);
        Assert.That(Tx.Values(recovered.GetPartition("b", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "r1" }), actions);
        Assert.That(Tx.Values(recovered.GetPartition("a", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "r1" }), "P was committed on a-0 only. " + actions);
    }
}

/// <summary>
/// The lost-marker repair commits only data of the epoch that committed: an open transaction of the
/// same producer id in a later epoch (a new producer instance) is somebody else's, undecided work.
/// </summary>
public class LostMarkerRepairEpochTests
{
    [Test]
    public async Task An_unconfirmed_commit_of_an_older_epoch_does_not_commit_an_open_transaction_of_a_newer_one()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Tx.Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("t");
            await using Producer first = await Tx.TransactionalAsync(store, "tx");
            await using Producer p = await Tx.TransactionalAsync(store, "tx"); // epoch bumped
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("t", 0), Tx.Msg("open")); // offset 0, never decided
            TransactionDescription d = store.Coordinator.ListTransactions().Single(x => x.TransactionalId == "tx");

            // The id's latest record lists a commit of the previous epoch on t-0 up to offset 5 whose
            // marker was not known durable (what a stale record could say; the offsets overlap).
            var m = new TransactionMetadata("tx", d.ProducerId, d.Epoch, 60_000);
            var older = new UnconfirmedCommit(d.ProducerId, (short)(d.Epoch - 1));
            older.Parts.Add(new KeyValuePair<TopicPartition, long>(new TopicPartition("t", 0), 5));
            m.UnconfirmedCommits.Add(older);
            store.GetPartition(TransactionCoordinator.TopicName, 0).Append(
                new TxLog.Records.Message(TransactionLogRecords.MetadataKey("tx"), TransactionLogRecords.MetadataValue(m)));
            await store.FlushAsync();
            Tx.CopyImage(dir.Path, image.Path); // kill -9
        }

        using LogStore recovered = LogStore.Open(image.Path, Tx.Options(DurabilityMode.GroupCommit));
        LogPartition t = recovered.GetPartition("t", 0);
        await t.FlushAsync();
        Assert.That(Tx.Values(t, IsolationLevel.ReadCommitted), Is.Empty, string.Join(" | ", recovered.Recovery.Actions));
        Assert.That(recovered.Recovery.Actions, Has.Some.Contains("aborted the undecided transaction"));
    }
}
