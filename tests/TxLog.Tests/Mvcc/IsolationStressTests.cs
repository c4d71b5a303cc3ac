using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

/// <summary>Concurrency stress probes of the isolation contract (docs/isolation.md).</summary>
public class IsolationStressTests
{
    private const int Keys = 16;

    private static Task Thread(Action body) => Task.Factory.StartNew(body, TaskCreationOptions.LongRunning);

    [Test]
    public async Task Snapshots_see_whole_commits_repeatably_through_savepoints_deletes_gc_and_checkpoints()
    {
        var options = new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromMilliseconds(500), CheckpointInterval = null };
        using var f = new EngineFixture(options);
        f.PutAll(0, Keys, 0);
        var errors = new List<string>();
        void Fail(string s)
        {
            lock (errors)
            {
                if (errors.Count < 20)
                {
                    errors.Add(s);
                }
            }
        }

        long generation = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var tasks = new List<Task>();
        for (int w = 0; w < 2; w++)
        {
            int seed = w;
            tasks.Add(Thread(() =>
            {
                var random = new Random(seed);
                while (!stop.IsCancellationRequested)
                {
                    int g = (int)Interlocked.Increment(ref generation) * 2; // even: all keys; g % 4 == 2: upper half deleted
                    using MvccTransaction tx = f.Begin(random.Next(2) == 0 ? TransactionIsolation.ReadCommitted : TransactionIsolation.ReadUncommitted);
                    try
                    {
                        // Garbage first, undone through a savepoint.
                        Savepoint sp = tx.SetSavepoint();
                        for (int k = 0; k < Keys; k++)
                        {
                            if (random.Next(3) == 0)
                            {
                                f.Map.Put(tx, k, -1);
                            }
                        }

                        tx.RollbackToSavepoint(sp);
                        for (int k = 0; k < Keys; k++)
                        {
                            if (g % 4 == 2 && k >= Keys / 2)
                            {
                                f.Map.Remove(tx, k);
                            }
                            else
                            {
                                f.Map.Put(tx, k, g);
                            }
                        }

                        if (random.Next(5) == 0)
                        {
                            Savepoint sp2 = tx.SetSavepoint();
                            f.Map.Put(tx, random.Next(Keys), -2);
                            tx.RollbackToSavepoint(sp2);
                        }

                        if (random.Next(8) == 0)
                        {
                            tx.Rollback();
                            continue;
                        }

                        tx.Commit();
                    }
                    catch (WriteConflictException)
                    {
                    }
                }
            }));
        }

        for (int r = 0; r < 2; r++)
        {
            TransactionIsolation level = r == 0 ? TransactionIsolation.RepeatableRead : TransactionIsolation.Serializable;
            tasks.Add(Thread(() =>
            {
                var random = new Random(100 + (int)level);
                while (!stop.IsCancellationRequested)
                {
                    using MvccTransaction tx = f.Begin(level);
                    var first = f.Map.Scan(tx).ToList();
                    Check(first, "scan");
                    if (random.Next(3) == 0)
                    {
                        System.Threading.Thread.Sleep(random.Next(5));
                    }

                    var point = new List<KeyValuePair<int, int>>();
                    for (int k = 0; k < Keys; k++)
                    {
                        if (f.Map.TryGet(tx, k, out int v))
                        {
                            point.Add(new KeyValuePair<int, int>(k, v));
                        }
                    }

                    var second = f.Map.Scan(tx).ToList();
                    if (!first.SequenceEqual(second) || !first.SequenceEqual(point))
                    {
                        Fail($"{level}: not repeatable: [{string.Join(",", first)}] then points [{string.Join(",", point)}] then [{string.Join(",", second)}]");
                    }

                    long count = f.Map.Count(tx, 0, Keys);
                    if (count != first.Count)
                    {
                        Fail($"{level}: count {count} vs scan {first.Count}");
                    }

                    tx.Rollback();
                }
            }));
        }

        tasks.Add(Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                f.Engine.CollectGarbage();
                if (Random.Shared.Next(20) == 0)
                {
                    f.Engine.CheckpointAsync().GetAwaiter().GetResult();
                }
            }
        }));

        await Task.WhenAll(tasks);
        TestContext.Out.WriteLine($"generations {generation}");
        Assert.That(errors, Is.Empty);

        void Check(List<KeyValuePair<int, int>> rows, string what)
        {
            if (rows.Count == 0)
            {
                Fail($"{what}: empty");
                return;
            }

            int g = rows[0].Value;
            int expected = g % 4 == 2 ? Keys / 2 : Keys;
            if (rows.Any(p => p.Value != g) || rows.Count != expected)
            {
                Fail($"{what}: partial commit: [{string.Join(",", rows)}]");
            }
        }
    }

    [TestCase(TransactionIsolation.RepeatableRead)]
    [TestCase(TransactionIsolation.Serializable)]
    public async Task Counter_increments_are_never_lost(TransactionIsolation isolation)
    {
        var options = new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromMilliseconds(500), CheckpointInterval = null };
        using var f = new EngineFixture(options);
        f.PutAll(0, 4, 0);
        var committed = new long[4];
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var tasks = new List<Task>();
        for (int w = 0; w < 4; w++)
        {
            int seed = w;
            tasks.Add(Thread(() =>
            {
                var random = new Random(seed);
                while (!stop.IsCancellationRequested)
                {
                    int k = random.Next(4);
                    using MvccTransaction tx = f.Begin(isolation);
                    try
                    {
                        int v = f.Map.Get(tx, k);
                        if (random.Next(2) == 0)
                        {
                            System.Threading.Thread.Yield();
                        }

                        if (random.Next(2) == 0)
                        {
                            f.Map.Put(tx, k, v + 1);
                        }
                        else if (!f.Map.TryUpdate(tx, k, v + 1, v))
                        {
                            tx.Rollback();
                            continue;
                        }

                        tx.Commit();
                        Interlocked.Increment(ref committed[k]);
                    }
                    catch (Exception e) when (e is WriteConflictException or SerializationException or DeadlockException)
                    {
                    }
                }
            }));
        }

        tasks.Add(Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                f.Engine.CollectGarbage();
                System.Threading.Thread.Sleep(1);
            }
        }));
        await Task.WhenAll(tasks);
        for (int k = 0; k < 4; k++)
        {
            Assert.That(f.Read(k), Is.EqualTo(committed[k]), $"key {k}");
        }
    }

    [Test]
    public async Task Serializable_prevents_write_skew_over_items_and_predicates()
    {
        var options = new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromMilliseconds(500), CheckpointInterval = null };
        using var f = new EngineFixture(options);
        // keys 0..3 "on call" (value 1) or not (0): at least one must stay on call.
        // keys 100..109: a predicate over the range must never hold more than 3 entries.
        f.PutAll(0, 4, 0);
        using (MvccTransaction setup = f.Begin(TransactionIsolation.ReadCommitted))
        {
            for (int k = 0; k < 4; k++)
            {
                f.Map.Put(setup, k, 1);
            }

            setup.Commit();
        }

        var errors = new List<string>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        var tasks = new List<Task>();
        for (int w = 0; w < 4; w++)
        {
            int seed = w;
            tasks.Add(Thread(() =>
            {
                var random = new Random(seed);
                while (!stop.IsCancellationRequested)
                {
                    using MvccTransaction tx = f.Begin(TransactionIsolation.Serializable);
                    try
                    {
                        switch (random.Next(4))
                        {
                            case 0:
                            {
                                int on = 0;
                                for (int k = 0; k < 4; k++)
                                {
                                    on += f.Map.Get(tx, k);
                                }

                                if (on >= 2)
                                {
                                    var candidates = Enumerable.Range(0, 4).Where(k => f.Map.Get(tx, k) == 1).ToList();
                                    f.Map.Put(tx, candidates[random.Next(candidates.Count)], 0);
                                }

                                break;
                            }

                            case 1:
                                f.Map.Put(tx, random.Next(4), 1);
                                break;
                            case 2:
                            {
                                long n = f.Map.Count(tx, 100, 110);
                                if (n < 3)
                                {
                                    f.Map.Put(tx, 100 + random.Next(10), 7);
                                }

                                break;
                            }

                            default:
                            {
                                var present = f.Map.Range(tx, 100, 110);
                                if (present.Count > 0)
                                {
                                    f.Map.Remove(tx, present[random.Next(present.Count)].Key);
                                }

                                break;
                            }
                        }

                        tx.Commit();
                    }
                    catch (Exception e) when (e is WriteConflictException or SerializationException or DeadlockException)
                    {
                    }
                }
            }));
        }

        tasks.Add(Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
                int on = Enumerable.Range(0, 4).Sum(k => f.Map.Get(tx, k));
                long n = f.Map.Count(tx, 100, 110);
                if (on < 1 || n > 3)
                {
                    lock (errors)
                    {
                        errors.Add($"on call {on}, range {n}");
                    }
                }

                tx.Rollback();
                f.Engine.CollectGarbage();
            }
        }));
        await Task.WhenAll(tasks);
        Assert.That(errors.Distinct(), Is.Empty);
    }
}
