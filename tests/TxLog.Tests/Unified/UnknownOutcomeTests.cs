using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>Regression found by a bug hunt: the test failed before the fix (with the checkpoint).</summary>
public class UnknownOutcomeTests
{
    // Was: a unified commit fails with an unknown outcome (a data partition's fsync fails after the decision
    // record is written); the engine undoes it in memory, a checkpoint then passes its timestamp, and the
    // reopen commits the log side while the maps lose it.
    [TestCase(true)]
    [TestCase(false)]
    public async Task After_a_unified_commit_with_an_unknown_outcome_maps_and_records_agree_after_reopen_even_with_a_checkpoint_in_between(bool checkpoint)
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem { Targets = p => p.Contains("events-0") && p.EndsWith(".log", StringComparison.Ordinal) };
        var opts = new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, LockTimeout = TimeSpan.FromMilliseconds(300) };
        LogStoreOptions StoreOpts(bool faulty) { var o = Options(DurabilityMode.GroupCommit); o.PreallocateBytes = 0; if (faulty) o.FileSystem = fs; return o; }
        Exception? failure = null;
        using (LogStore store = LogStore.Open(dir.Path, StoreOpts(true)))
        {
            store.CreateTopic("events");
            TransactionEngine engine = store.OpenTransactionEngine(opts);
            var map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
            using (MvccTransaction t = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
            {
                map.Put(t, 1, 100);
                t.Commit();
            }

            await using Producer producer = await TransactionalAsync(store, "p");
            StoreTransaction u = store.BeginTransaction(producer);
            map.Put(u.Maps, 1, 90);
            await u.ProduceAsync(new TopicPartition("events", 0), Msg("debit 10"));
            fs.FailSync(1);
            try
            {
                await u.CommitAsync();
            }
            catch (Exception e)
            {
                failure = e;
            }

            if (checkpoint) await engine.CheckpointAsync();
        }

        Assert.That(failure, Is.Not.Null, "the commit failed");
        using LogStore re = LogStore.Open(dir.Path, StoreOpts(false));
        TransactionEngine e2 = re.OpenTransactionEngine(opts);
        var m2 = e2.OpenMap("m", Serializers.Int32, Serializers.Int32);
        using MvccTransaction r = e2.BeginTransaction(TransactionIsolation.RepeatableRead);
        List<string> events = Values(re.GetPartition("events", 0), IsolationLevel.ReadCommitted);
        int balance = m2.Get(r, 1);
        Assert.That(events.Count == 1, Is.EqualTo(balance == 90), $"maps and records must agree: events=[{string.Join(",", events)}] balance={balance}");
    }
}
