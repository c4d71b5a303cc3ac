using System.Diagnostics;
using TxLog.Consuming;
using TxLog.Tests.Diagnostics;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;

namespace TxLog.Tests.Shutdown;

/// <summary>
/// A close whose <see cref="LogStoreOptions.CloseTimeout"/> runs out while an operation on the files
/// is stuck (an fsync held by the test): it throws <see cref="TimeoutException"/> in time, but must not
/// hand the directory to another store while something of the old one may still write to it.
/// </summary>
[TestFixture]
public class CloseTimeoutLockTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);
    private static readonly char Sep = Path.DirectorySeparatorChar;

    // Held threads are dedicated ones; a roomy pool keeps the store's own continuations from waiting
    // for thread injection on a 2-core machine.
    [OneTimeSetUp]
    public void RoomyPool()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), io);
    }

    private static LogStoreOptions Options(ZombieWatchFileSystem fs, TimeSpan closeTimeout)
    {
        LogStoreOptions options = Tx.Options(DurabilityMode.GroupCommit);
        options.FileSystem = fs;
        options.CloseTimeout = closeTimeout;
        return options;
    }

    private static Task StartDispose(LogStore store) =>
        Task.Factory.StartNew(store.Dispose, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    // True when another store could open the directory now (it is closed again at once).
    private static bool DirectoryIsFree(string path)
    {
        try
        {
            LogStore.Open(path).Dispose();
            return true;
        }
        catch (LogDirectoryLockedException)
        {
            return false;
        }
    }

    // Closes the store while an fsync is held, checks the close gave up within its timeout with a
    // TimeoutException, and tells whether the directory could be opened while the fsync was still held
    // (then releases it).
    private static async Task<bool> CloseWhileHeldAsync(LogStore store, ZombieWatchFileSystem fs, string path)
    {
        Task dispose = StartDispose(store);
        Task first = await Task.WhenAny(dispose, Task.Delay(Bound));
        fs.StartWatching();
        bool freeWhileHeld = first == dispose && DirectoryIsFree(path);
        fs.Release();
        Assert.That(first, Is.SameAs(dispose), "the close is bounded by CloseTimeout");
        Assert.That(dispose.Exception?.InnerException, Is.InstanceOf<TimeoutException>(), "the close reports the timeout");
        return freeWhileHeld;
    }

    [Test]
    public async Task A_commit_whose_data_fsync_outlives_the_close_keeps_the_directory_locked_and_writes_nothing_after_it()
    {
        // A two-partition commit waits for t-0's data fsync, which hangs past CloseTimeout. The close
        // gives up on t-0 and throws. Once the fsync returns, the commit goes on to its COMMIT markers:
        // t-0 was never closed, so its marker would land in a directory that a second store may
        // have opened and recovered meanwhile (writing its own markers at the same offsets).
        using var dir = new TempDirectory();
        var fs = new ZombieWatchFileSystem();
        LogStore store = LogStore.Open(dir.Path, Options(fs, TimeSpan.FromMilliseconds(500)));
        store.CreateTopic("t", 2);
        Producer producer = await Tx.TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("t", 0), Tx.Msg("a"));
        await producer.ProduceAsync(new TopicPartition("t", 1), Tx.Msg("b"));
        fs.Hold(path => path.Contains($"{Sep}t-0{Sep}", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal));
        Task commit = producer.CommitTransactionAsync();
        Assert.That(fs.WaitForHeldSync(Bound), Is.True, "t-0's data fsync is held");

        bool freeWhileHeld = await CloseWhileHeldAsync(store, fs, dir.Path);

        try
        {
            await commit.WaitAsync(Bound);
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException)
        {
            // The commit's outcome is decided by recovery.
        }

        Assert.Multiple(() =>
        {
            Assert.That(freeWhileHeld, Is.False, "the directory stays locked while the fsync of the closed store still runs");
            Assert.That(fs.LateChanges, Is.Empty, "nothing reaches the files after the close returned");
        });

        // The held fsync returned: the lock went with it, and recovery finds one whole transaction.
        using LogStore reopened = LogStore.Open(dir.Path, Tx.Options(DurabilityMode.GroupCommit));
        Assert.That(reopened.Recovery.CleanShutdown, Is.False);
        List<string> t0 = Tx.Values(reopened.GetPartition("t", 0), IsolationLevel.ReadCommitted);
        List<string> t1 = Tx.Values(reopened.GetPartition("t", 1), IsolationLevel.ReadCommitted);
        Assert.That((t0, t1), Is.EqualTo((new List<string> { "a" }, new List<string> { "b" })), "the PrepareCommit was durable: recovery commits both");
    }

    [Test]
    public async Task A_checkpoint_that_outlives_the_close_renames_and_trims_nothing_after_it()
    {
        // The checkpoint's fsync hangs past CloseTimeout and then succeeds: the checkpoint would go on
        // to rename its file into place, delete older checkpoints and trim the redo log.
        using var dir = new TempDirectory();
        var fs = new ZombieWatchFileSystem();
        LogStore store = LogStore.Open(dir.Path, Options(fs, TimeSpan.FromMilliseconds(300)));
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointInterval = null });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        using (MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            map.Put(tx, 1, 1);
            await tx.CommitAsync();
        }

        fs.Hold(static path => path.EndsWith(".ckpt.tmp", StringComparison.Ordinal));
        Task<long> checkpoint = Task.Factory.StartNew(() => engine.CheckpointAsync(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        Assert.That(fs.WaitForHeldSync(Bound), Is.True, "the checkpoint's fsync is held");

        bool freeWhileHeld = await CloseWhileHeldAsync(store, fs, dir.Path);

        try
        {
            await checkpoint.WaitAsync(Bound);
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException)
        {
            // Refused after the close.
        }

        Assert.Multiple(() =>
        {
            Assert.That(freeWhileHeld, Is.False, "the directory stays locked while the checkpoint still runs");
            Assert.That(fs.LateChanges, Is.Empty, "nothing reaches the files after the close returned");
        });

        using LogStore reopened = LogStore.Open(dir.Path);
        TransactionEngine engine2 = reopened.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        using MvccTransaction read = engine2.BeginTransaction(TransactionIsolation.ReadCommitted);
        Assert.That(engine2.OpenMap("m", Serializers.Int32, Serializers.Int32).Get(read, 1, -1), Is.EqualTo(1));
    }

    [Test]
    public async Task An_append_stuck_in_a_segment_roll_does_not_hold_the_close_past_its_timeout()
    {
        // The roll's fsync runs with the partition's append lock held, which the close takes for the
        // producer-state snapshot: the close waited for it without bound. After the fsync, the roll
        // would write the old segment's indexes and create the next segment.
        using var dir = new TempDirectory();
        var fs = new ZombieWatchFileSystem();
        var loggers = new ListLoggerFactory();
        LogStoreOptions options = Options(fs, TimeSpan.FromMilliseconds(500));
        options.LoggerFactory = loggers;
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 1, new TopicOptions { SegmentBytes = 100 }); // the second batch rolls
        LogPartition partition = store.GetPartition("t", 0);
        partition.Append(Tx.Msg("x"));
        fs.Hold(static path => path.Contains($"{Sep}t-0{Sep}", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal));
        Task roll = Task.Factory.StartNew(() => partition.Append(Tx.Msg("y")), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.That(fs.WaitForHeldSync(Bound), Is.True, "the roll's fsync is held");

        bool freeWhileHeld = await CloseWhileHeldAsync(store, fs, dir.Path);
        Assert.That(async () => await roll.WaitAsync(Bound), Throws.InstanceOf<ObjectDisposedException>(), "the roll is refused after its fsync");
        Assert.That(loggers.WithId(4003), Has.Count.EqualTo(1), "the close reports that it keeps the lock");
        Assert.That(loggers.WithId(4004), Has.Count.EqualTo(1), "the release is reported once the fsync returned");
        Assert.That(fs.OpenFiles, Is.EqualTo(0), "the partition the close gave up on has its files closed once nothing runs (no handle leak)");
        Assert.Multiple(() =>
        {
            Assert.That(freeWhileHeld, Is.False, "the directory stays locked while the roll's fsync runs");
            Assert.That(fs.LateChanges, Is.Empty, "nothing reaches the files after the close returned");
        });

        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(Tx.Values(reopened.GetPartition("t", 0), IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "x" }));
    }

    [Test]
    public async Task A_group_commit_follower_that_leads_after_a_timed_out_close_is_refused_without_failing_the_partition()
    {
        // A's fsync of t-0 hangs past CloseTimeout; B appended after A's fsync started and waits as a
        // follower. When A's fsync returns, B leads the next fsync: the store is closed, so B must get
        // ObjectDisposedException like every other operation after the close, not a partition failure
        // (LogWriteException, error event 4002 "a write or fsync failed") that no disk caused.
        using var dir = new TempDirectory();
        var fs = new ZombieWatchFileSystem();
        var loggers = new ListLoggerFactory();
        LogStoreOptions options = Options(fs, TimeSpan.FromMilliseconds(500));
        options.LoggerFactory = loggers;
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 1);
        LogPartition partition = store.GetPartition("t", 0);
        fs.Hold(static path => path.Contains($"{Sep}t-0{Sep}", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal));
        Task<AppendResult> a = Task.Factory.StartNew(() => partition.AppendAsync(Tx.Msg("a")).AsTask(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        Assert.That(fs.WaitForHeldSync(Bound), Is.True, "A's fsync is held");
        Task<AppendResult> b = partition.AppendAsync(Tx.Msg("b")).AsTask();
        Assert.That(b.IsCompleted, Is.False, "B waits for the next fsync");

        Task dispose = StartDispose(store);
        Task first = await Task.WhenAny(dispose, Task.Delay(Bound));
        fs.Release();
        Assert.That(first, Is.SameAs(dispose), "the close is bounded by CloseTimeout");
        Assert.That(dispose.Exception?.InnerException, Is.InstanceOf<TimeoutException>());
        await a.WaitAsync(Bound).ContinueWith(static _ => { }); // its fsync ran: acknowledged
        Assert.That(async () => await b.WaitAsync(Bound), Throws.InstanceOf<ObjectDisposedException>(), "B is refused as after any close");
        Assert.That(loggers.WithId(4002), Is.Empty, "no partition failed: the store was closed");
        Assert.That(partition.Log.Failure, Is.Null);
    }

    [Test]
    public async Task The_close_waits_for_all_stuck_partitions_within_one_close_timeout()
    {
        // Three partitions each have an fsync stuck: the close must give up after CloseTimeout in all,
        // not after CloseTimeout per partition.
        TimeSpan closeTimeout = TimeSpan.FromSeconds(2);
        using var dir = new TempDirectory();
        var fs = new ZombieWatchFileSystem();
        LogStore store = LogStore.Open(dir.Path, Options(fs, closeTimeout));
        store.CreateTopic("t", 3);
        fs.Hold(static path => path.Contains($"{Sep}t-", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal));
        var appends = new List<Task>();
        for (int p = 0; p < 3; p++)
        {
            LogPartition partition = store.GetPartition("t", p);
            appends.Add(Task.Factory.StartNew(() => partition.AppendAsync(Tx.Msg("x")).AsTask(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap());
            Assert.That(fs.WaitForHeldSync(Bound), Is.True, $"t-{p}'s fsync is held");
        }

        var stopwatch = Stopwatch.StartNew();
        Task dispose = StartDispose(store);
        Task first = await Task.WhenAny(dispose, Task.Delay(Bound));
        TimeSpan took = stopwatch.Elapsed;
        fs.Release();
        await Task.WhenAll(appends).WaitAsync(Bound).ContinueWith(static _ => { }); // acknowledged or refused: both fine here

        Assert.That(first, Is.SameAs(dispose));
        Assert.That(dispose.Exception?.InnerException, Is.InstanceOf<TimeoutException>());
        Assert.That(took, Is.LessThan(closeTimeout * 2), $"the close took {took.TotalMilliseconds:F0} ms for a CloseTimeout of {closeTimeout.TotalMilliseconds:F0} ms");
        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(reopened.GetPartition("t", 2).LogEndOffset, Is.EqualTo(1));
    }
}
