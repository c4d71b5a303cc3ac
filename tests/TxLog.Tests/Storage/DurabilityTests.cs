using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

public class DurabilityTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Test]
    public void Group_commit_acknowledges_only_after_the_fsync_and_followers_share_one_fsync()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, FileSystem = fs, PreallocateBytes = 0 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        int syncsBefore = fs.LogSyncs;

        fs.BlockSyncs();
        // The first appender becomes the leader and blocks inside its fsync.
        Task<AppendResult> leader = Task.Run(() => p.AppendAsync(new Message(Bytes("leader"))).AsTask());
        Assert.That(fs.WaitForBlockedSync(Timeout), Is.True, "the leader reached fsync");

        // Followers arrive while the leader's fsync is in progress.
        var followers = new List<Task<AppendResult>>();
        for (int i = 0; i < 10; i++)
        {
            int n = i;
            followers.Add(Task.Run(() => p.AppendAsync(new Message(Bytes($"f{n}"))).AsTask()));
        }

        SpinWait.SpinUntil(() => p.LogEndOffset == 11, Timeout);
        Assert.That(p.LogEndOffset, Is.EqualTo(11), "all followers wrote their batches");
        Assert.That(leader.IsCompleted || followers.Any(f => f.IsCompleted), Is.False, "nothing is acknowledged before its fsync");
        Assert.That(p.HighWatermark, Is.Zero, "nothing is durable yet");

        fs.Release();
        Assert.That(Task.WaitAll([leader, .. followers], Timeout), Is.True);
        Assert.That(p.HighWatermark, Is.EqualTo(11));

        // One fsync for the leader, then the ten followers shared the next one.
        Assert.That(fs.LogSyncs - syncsBefore, Is.EqualTo(2));
        Assert.That(p.GroupCommit.FlushCount, Is.EqualTo(2));
    }

    [Test]
    public async Task Every_acknowledged_offset_is_below_the_high_watermark_under_concurrency()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        var violations = 0;
        var writers = new Task[8];
        for (int w = 0; w < writers.Length; w++)
        {
            int writer = w;
            writers[w] = Task.Run(async () =>
            {
                for (int i = 0; i < 50; i++)
                {
                    AppendResult r = await p.AppendAsync(new Message(Bytes($"{writer}-{i}")));
                    if (p.HighWatermark <= r.LastOffset)
                    {
                        Interlocked.Increment(ref violations);
                    }
                }
            });
        }

        await Task.WhenAll(writers).WaitAsync(Timeout);
        Assert.That(violations, Is.Zero);
        Assert.That(p.LogEndOffset, Is.EqualTo(400));
        Assert.That(p.GroupCommit.FlushCount, Is.LessThanOrEqualTo(400));
        Assert.That(ReadAll(p, 0), Has.Count.EqualTo(400));
    }

    [Test]
    public void Periodic_mode_acknowledges_before_fsync_and_the_high_watermark_lags_until_the_flush()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.Periodic, FlushInterval = TimeSpan.FromHours(1), FileSystem = fs });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        fs.BlockSyncs();

        ValueTask<AppendResult> append = p.AppendAsync(new Message(Bytes("x")));
        Assert.That(append.IsCompletedSuccessfully, Is.True, "acknowledged without an fsync");
        Assert.That(p.LogEndOffset, Is.EqualTo(1));
        Assert.That(p.HighWatermark, Is.Zero, "not durable until the periodic fsync");
        Assert.That(ReadAll(p, 0), Is.Empty, "readers see only durable data");

        fs.Release();
        Assert.That(p.FlushAsync().AsTask().Wait(Timeout), Is.True);
        Assert.That(p.HighWatermark, Is.EqualTo(1));
        Assert.That(ReadAll(p, 0), Is.EqualTo(new[] { "0:null:x" }));
    }

    [Test]
    public void Periodic_mode_fsyncs_on_its_own_within_the_interval()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.Periodic, FlushInterval = TimeSpan.FromMilliseconds(20) });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("x")));
        Assert.That(SpinWait.SpinUntil(() => p.HighWatermark == 1, Timeout), Is.True, "the background flusher advanced the HW");
    }

    [Test]
    public void None_mode_never_fsyncs_on_append_and_the_high_watermark_follows_the_log_end()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, FileSystem = fs, PreallocateBytes = 0 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        int syncs = fs.LogSyncs;
        for (int i = 0; i < 10; i++)
        {
            Assert.That(p.AppendAsync(new Message(Bytes("x"))).IsCompletedSuccessfully, Is.True);
        }

        Assert.That(fs.LogSyncs, Is.EqualTo(syncs));
        Assert.That(p.HighWatermark, Is.EqualTo(p.LogEndOffset));

        // An explicit flush still fsyncs.
        Assert.That(p.FlushAsync().AsTask().Wait(Timeout), Is.True);
        Assert.That(fs.LogSyncs, Is.EqualTo(syncs + 1));
    }

    [Test]
    public void A_sync_after_a_clean_close_reports_the_durable_end_instead_of_throwing()
    {
        // Regression: a group-commit follower woken to lead one more fsync after the store closed got
        // ObjectDisposedException although its append was flushed by the close.
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("a")));
        Assert.That(p.Log.Close(Timeout), Is.True);
        Assert.That(p.Log.Sync(), Is.EqualTo(1));
        Assert.That(p.GroupCommit.WaitAsync(0).IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void Dispose_flushes_pending_group_commit_waiters_instead_of_stranding_them()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, FileSystem = fs });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        fs.BlockSyncs();
        Task<AppendResult> leader = Task.Run(() => p.AppendAsync(new Message(Bytes("a"))).AsTask());
        Assert.That(fs.WaitForBlockedSync(Timeout), Is.True);
        Task<AppendResult> follower = Task.Run(() => p.AppendAsync(new Message(Bytes("b"))).AsTask());
        SpinWait.SpinUntil(() => p.LogEndOffset == 2, Timeout);

        Task closing = Task.Run(store.Dispose);
        fs.Release();
        Assert.That(Task.WaitAll([leader, follower, closing], Timeout), Is.True, "every waiter completed");
        Assert.That(follower.Result.BaseOffset, Is.EqualTo(1));

        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(ReadAll(reopened.GetPartition("t", 0), 0), Is.EqualTo(new[] { "0:null:a", "1:null:b" }));
    }

    [Test]
    public void Commit_heavy_partitions_write_zeros_ahead_and_a_clean_close_cuts_them_off()
    {
        using var dir = new TempDirectory();
        string log = Path.Combine(dir.Path, "t-0", "00000000000000000000.log");
        long dataBytes;
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, PreallocateBytes = 4 << 20 }))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 20; i++)
            {
                p.AppendAsync(new Message(Bytes($"v{i}"))).AsTask().Wait(Timeout);
            }

            Assert.That(SpinWait.SpinUntil(() => new FileInfo(log).Length >= 2 << 20, Timeout), Is.True, "zeros were written ahead of the data");
            dataBytes = p.SizeInBytes;
            Assert.That(dataBytes, Is.LessThan(4096));
            Assert.That(ReadAll(p, 0), Has.Count.EqualTo(20));
        }

        Assert.That(new FileInfo(log).Length, Is.EqualTo(dataBytes), "the file holds exactly the batches after a clean close");
        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(reopened.Recovery.ScannedSegments, Is.Zero);
        Assert.That(ReadAll(reopened.GetPartition("t", 0), 0), Has.Count.EqualTo(20));
    }

    [Test]
    public void A_crash_image_with_preallocated_zeros_recovers_every_acknowledged_record()
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, PreallocateBytes = 2 << 20 }))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 30; i++)
            {
                p.AppendAsync(new Message(Bytes($"v{i}"))).AsTask().Wait(Timeout);
            }

            string log = Path.Combine(dir.Path, "t-0", "00000000000000000000.log");
            Assert.That(SpinWait.SpinUntil(() => new FileInfo(log).Length >= 1 << 20, Timeout), Is.True);

            // Copy the live directory: what a crash at this moment would leave (no clean marker).
            CopyImage(dir.Path, image.Path);
        }

        using LogStore recovered = LogStore.Open(image.Path);
        Assert.That(recovered.Recovery.CleanShutdown, Is.False);
        Assert.That(recovered.Recovery.TruncatedBytes, Is.GreaterThan(1 << 19), "the zeros were truncated as a torn tail");
        LogPartition r = recovered.GetPartition("t", 0);
        Assert.That(r.LogEndOffset, Is.EqualTo(30));
        Assert.That(ReadAll(r, 0), Is.EqualTo(Enumerable.Range(0, 30).Select(i => $"{i}:null:v{i}")));
        Assert.That(r.Append(new Message(Bytes("after"))).BaseOffset, Is.EqualTo(30));
    }
}
