using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

/// <summary>Instant-mode commits acknowledged before a power-loss image survive it, with checkpoints running concurrently.</summary>
public class CheckpointPowerLossTests
{
    [Test]
    public async Task Acknowledged_commits_survive_power_loss_during_concurrent_checkpoints()
    {
        const LogSyncMode sync = LogSyncMode.Instant;
        const int Writers = 3;
        using var dir = new TempDirectory();
        var images = new List<(TempDirectory Dir, long[] Acked)>();
        var fs = new PowerLossFileSystem();
        LogStoreOptions options = TxLog.Tests.Transactions.Tx.Options(DurabilityMode.None);
        options.FileSystem = fs;
        options.PreallocateBytes = 0;
        options.SegmentBytes = 16 * 1024;
        var mvcc = new MvccOptions { SyncMode = sync, CheckpointInterval = null, CheckpointRedoBytes = 4096, LockTimeout = TimeSpan.FromSeconds(2) };
        var acked = new long[Writers];
        var attempted = new long[Writers];
        try
        {
            using (LogStore store = LogStore.Open(dir.Path, options))
            {
                TransactionEngine engine = store.OpenTransactionEngine(mvcc);
                TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
                using var stop = new CancellationTokenSource();
                var workers = new List<Task>();
                for (int w = 0; w < Writers; w++)
                {
                    int me = w;
                    workers.Add(Task.Factory.StartNew(() =>
                    {
                        for (long i = 1; !stop.IsCancellationRequested; i++)
                        {
                            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
                            Volatile.Write(ref attempted[me], i);
                            map.Put(tx, me, i);
                            map.Put(tx, 100 + me, i);
                            map.Put(tx, 1000 + (int)(i % 20) + (me * 100), i); // churn
                            tx.Commit();
                            Volatile.Write(ref acked[me], i);
                        }
                    }, TaskCreationOptions.LongRunning));
                }

                workers.Add(Task.Run(async () =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        await engine.CheckpointAsync();
                        await Task.Delay(1);
                    }
                }));

                var random = new Random(7);
                for (int k = 0; k < 8; k++)
                {
                    await Task.Delay(random.Next(20, 60));
                    var image = new TempDirectory();
                    long[] before = new long[Writers];
                    for (int w = 0; w < Writers; w++)
                    {
                        before[w] = Volatile.Read(ref acked[w]);
                    }

                    fs.CopyDurableImage(dir.Path, image.Path);

                    images.Add((image, before));
                }

                stop.Cancel();
                await Task.WhenAll(workers);
            }

            foreach ((TempDirectory image, long[] before) in images)
            {
                File.Delete(Path.Combine(image.Path, LogStore.CleanShutdownFileName));
                using LogStore r = LogStore.Open(image.Path, TxLog.Tests.Transactions.Tx.Options(DurabilityMode.None));
                TransactionEngine e = r.OpenTransactionEngine(mvcc);
                TransactionalMap<int, long> m = e.OpenMap("m", Serializers.Int32, Serializers.Int64);
                using MvccTransaction read = e.BeginTransaction(TransactionIsolation.RepeatableRead);
                for (int w = 0; w < Writers; w++)
                {
                    long a = m.Get(read, w, -1), b = m.Get(read, 100 + w, -1);
                    string context = $"writer {w}: acked {before[w]}, attempted {attempted[w]}; {e.RecoverySummary}";
                    Assert.That(b, Is.EqualTo(a), "atomic, " + context);
                    Assert.That(a, Is.GreaterThanOrEqualTo(before[w]), "durable, " + context);
                    Assert.That(a, Is.LessThanOrEqualTo(attempted[w]), context);
                }
            }
        }
        finally
        {
            foreach ((TempDirectory image, _) in images)
            {
                image.Dispose();
            }
        }
    }
}
