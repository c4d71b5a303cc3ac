using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

/// <summary>
/// Many threads move money between accounts (with random aborts); the total must be the same in
/// every snapshot read, at the end, and after recovery.
/// </summary>
public class BankTransferTests
{
    private const int Accounts = 50;
    private const int Initial = 1_000;

    [TestCase(TransactionIsolation.Serializable)]
    [TestCase(TransactionIsolation.RepeatableRead)]
    public async Task The_total_is_invariant_in_every_snapshot_and_after_recovery(TransactionIsolation isolation)
    {
        using var dir = new TempDirectory();
        var options = new MvccOptions { SyncMode = LogSyncMode.Instant, LockTimeout = TimeSpan.FromMilliseconds(50), CheckpointInterval = null, CheckpointRedoBytes = 64 * 1024 };
        long committed = 0, conflicts = 0, aborted = 0, audits = 0;
        var badAudits = new List<long>();
        using (var f = new EngineFixture(options, dir.Path, Durability.DurabilityMode.None))
        {
            using (MvccTransaction setup = f.Begin(TransactionIsolation.ReadCommitted))
            {
                for (int a = 0; a < Accounts; a++)
                {
                    f.Map.Put(setup, a, Initial);
                }

                setup.Commit();
            }

            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            var workers = new List<Task>();
            for (int w = 0; w < 6; w++)
            {
                int seed = w;
                // Row-lock waits block the calling thread, so writers get threads of their own
                // (on a 2-core pool, blocked pool threads would delay the commits they wait for).
                workers.Add(Task.Factory.StartNew(() =>
                {
                    var random = new Random(seed);
                    while (!stop.IsCancellationRequested)
                    {
                        int from = random.Next(Accounts), to = random.Next(Accounts - 1);
                        if (to >= from)
                        {
                            to++;
                        }

                        int amount = random.Next(1, 50);
                        using MvccTransaction tx = f.Begin(isolation);
                        try
                        {
                            int fromBalance = f.Map.Get(tx, from);
                            int toBalance = f.Map.Get(tx, to);
                            f.Map.Put(tx, from, fromBalance - amount);
                            f.Map.Put(tx, to, toBalance + amount);
                            if (random.Next(10) == 0)
                            {
                                tx.Rollback();
                                Interlocked.Increment(ref aborted);
                                continue;
                            }

                            tx.Commit();
                            Interlocked.Increment(ref committed);
                        }
                        catch (Exception e) when (e is WriteConflictException or SerializationException)
                        {
                            Interlocked.Increment(ref conflicts);
                        }
                    }
                }, TaskCreationOptions.LongRunning));
            }

            // Auditors: every snapshot sums to the same total.
            for (int r = 0; r < 2; r++)
            {
                workers.Add(Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        await Task.Delay(1); // leave the two cores to the writers
                        using MvccTransaction tx = f.Begin(TransactionIsolation.RepeatableRead);
                        long total = f.Map.Scan(tx).Sum(p => (long)p.Value);
                        tx.Commit();
                        Interlocked.Increment(ref audits);
                        if (total != (long)Accounts * Initial)
                        {
                            lock (badAudits)
                            {
                                badAudits.Add(total);
                            }
                        }
                    }
                }));
            }

            await Task.WhenAll(workers);
            TestContext.Out.WriteLine($"{isolation}: {committed} committed, {aborted} rolled back, {conflicts} conflicts, {audits} audits");
            Assert.That(badAudits, Is.Empty, "a snapshot saw money created or destroyed");
            Assert.That(committed, Is.GreaterThan(50), "transfers did commit");
            Assert.That(audits, Is.GreaterThan(10));
            await f.Engine.CheckpointAsync();
            TestContext.Out.WriteLine($"{isolation}: {committed} committed, {aborted} rolled back, {conflicts} conflicts, {audits} audits");
        }

        using var recovered = new EngineFixture(options, dir.Path);
        using MvccTransaction check = recovered.Begin(TransactionIsolation.RepeatableRead);
        Assert.That(recovered.Map.Scan(check).Sum(p => (long)p.Value), Is.EqualTo((long)Accounts * Initial));
        Assert.That(recovered.Map.Count(check), Is.EqualTo(Accounts));
    }
}
