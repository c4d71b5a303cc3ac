using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Shutdown;

/// <summary>Closing the store while work is in flight.</summary>
[TestFixture]
public class DisposeInFlightTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    // Blocked threads in these tests are dedicated ones; a roomy pool keeps the store's own
    // continuations (its background loop) from waiting for thread injection, which a 2-core machine
    // would otherwise report as a close timeout.
    [OneTimeSetUp]
    public void RoomyPool()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), io);
    }

    [Test]
    public async Task Dispose_during_a_checkpoint_that_outlives_the_close_timeout_is_not_clean()
    {
        // A checkpoint holds the engine's checkpoint gate while its file is fsynced. If that fsync hangs
        // past CloseTimeout, the close must say so (TimeoutException, no clean-shutdown marker): the
        // checkpoint is still running (what it may still write is refused, and the directory stays
        // locked until its fsync returns: CloseTimeoutLockTests).
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem { Targets = static path => path.EndsWith(".ckpt.tmp", StringComparison.Ordinal) };
        var store = LogStore.Open(dir.Path, new LogStoreOptions { FileSystem = fs, Durability = DurabilityMode.GroupCommit, CloseTimeout = TimeSpan.FromMilliseconds(300) });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        using (MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            map.Put(tx, 1, 1);
            await tx.CommitAsync();
        }

        fs.FailSync(block: true);
        Task<long> checkpoint = Task.Factory.StartNew(() => engine.CheckpointAsync(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        Assert.That(fs.WaitForBlockedSync(Bound), Is.True, "the checkpoint's fsync is held");

        Task dispose = Task.Factory.StartNew(store.Dispose, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Task first = await Task.WhenAny(dispose, Task.Delay(Bound));
        fs.ReleaseSync();
        Assert.That(first, Is.SameAs(dispose), "Dispose is bounded by CloseTimeout");
        try
        {
            await checkpoint;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // the injected fsync failure
        }

        TestContext.Out.WriteLine("dispose: " + dispose.Exception);
        Assert.That(dispose.Exception?.InnerException, Is.InstanceOf<TimeoutException>(), "the close did not finish its background work in time");
        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)), Is.False, "no clean-shutdown marker while a checkpoint still runs");

        using LogStore reopened = LogStore.Open(dir.Path);
        TransactionEngine engine2 = reopened.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        using MvccTransaction read = engine2.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(engine2.OpenMap("m", Serializers.Int32, Serializers.Int32).Get(read, 1, -1), Is.EqualTo(1));
    }

    [Test]
    public async Task ConsumeAsync_without_an_assignment_ends_when_the_store_closes()
    {
        // A consumer loop that has nothing assigned yet waits only for its cancellation token: the
        // store's close woke the partitions' waiters, not this one, so the loop outlived the store.
        using var dir = new TempDirectory();
        var store = LogStore.Open(dir.Path, new LogStoreOptions { CloseTimeout = TimeSpan.FromSeconds(2) });
        using Consuming.Consumer consumer = store.CreateConsumer();
        Task loop = Task.Run(async () =>
        {
            await foreach (Consuming.ConsumeResult _ in consumer.ConsumeAsync())
            {
            }
        });
        await Task.Delay(200); // the loop is waiting
        Assert.That(loop.IsCompleted, Is.False);

        await store.DisposeAsync();
        Task first = await Task.WhenAny(loop, Task.Delay(Bound));
        Assert.That(first, Is.SameAs(loop), "ConsumeAsync ends when the store closes");
        Assert.That(async () => await loop, Throws.InstanceOf<ObjectDisposedException>());
    }
}
