using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>Unified, plain and read transactions on the same rows: snapshots see whole commits, counters lose nothing.</summary>
public class UnifiedIsolationStressTests
{
    [Test]
    public async Task Unified_and_plain_commits_on_shared_rows_are_whole_and_lose_no_increment()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None));
        store.CreateTopic("e");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null, LockTimeout = TimeSpan.FromSeconds(1) });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        using (MvccTransaction seed = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            map.Put(seed, 0, 0);
            map.Put(seed, 1, 0);
            seed.Commit();
        }

        long committed = 0;
        var errors = new List<string>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var tasks = new List<Task>();
        for (int w = 0; w < 2; w++)
        {
            string name = "p" + w;
            tasks.Add(Task.Run(async () =>
            {
                await using Producer p = await TransactionalAsync(store, name);
                var random = new Random(name.GetHashCode());
                while (!stop.IsCancellationRequested)
                {
                    StoreTransaction u = store.BeginTransaction(p);
                    try
                    {
                        long v = map.Get(u.Maps, 0);
                        map.Put(u.Maps, 0, v + 1);
                        map.Put(u.Maps, 1, v + 1);
                        await u.ProduceAsync(new TopicPartition("e", 0), Msg("x"));
                        if (random.Next(5) == 0)
                        {
                            await u.AbortAsync();
                            continue;
                        }

                        await u.CommitAsync();
                        Interlocked.Increment(ref committed);
                    }
                    catch (WriteConflictException)
                    {
                        await u.AbortAsync();
                    }
                }
            }));
        }

        tasks.Add(Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.Serializable);
                try
                {
                    long v = map.Get(tx, 0);
                    map.Put(tx, 1, v + 1);
                    map.Put(tx, 0, v + 1);
                    tx.Commit();
                    Interlocked.Increment(ref committed);
                }
                catch (Exception e) when (e is WriteConflictException or SerializationException)
                {
                }
            }
        }, TaskCreationOptions.LongRunning));

        tasks.Add(Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using (MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead))
                {
                    long a = map.Get(tx, 0), b = map.Get(tx, 1);
                    if (a != b)
                    {
                        lock (errors)
                        {
                            errors.Add($"snapshot {a} vs {b}");
                        }
                    }
                }

                engine.CollectGarbage();
                if (Random.Shared.Next(50) == 0)
                {
                    engine.CheckpointAsync().GetAwaiter().GetResult();
                }
            }
        }, TaskCreationOptions.LongRunning));

        await Task.WhenAll(tasks);
        TestContext.Out.WriteLine($"{committed} committed");
        Assert.That(errors, Is.Empty);
        using MvccTransaction check = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
        Assert.That(map.Get(check, 0), Is.EqualTo(committed));
        Assert.That(map.Get(check, 1), Is.EqualTo(committed));
    }
}
