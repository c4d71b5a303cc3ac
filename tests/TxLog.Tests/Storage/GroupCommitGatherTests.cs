using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

/// <summary>
/// A group-commit leader whose last fsync covered more committers than are waiting now yields a few
/// times before its fsync so runnable committers can join (a throughput heuristic, measured in the
/// benchmarks). What must hold whatever the timing: the wait is bounded, so a lone committer after a
/// large group is acknowledged by one fsync of its own, and every committer of a group is acknowledged
/// only once durable.
/// </summary>
public class GroupCommitGatherTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Test]
    public async Task A_lone_commit_after_a_large_group_is_not_held_back_waiting_for_the_group()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, FileSystem = fs, PreallocateBytes = 0 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);

        // A flush blocked in its fsync; eight committers queue behind it and then share the next fsync.
        fs.BlockSyncs();
        long first = p.Append(new Message(Bytes("a"))).LastOffset;
        Task firstWait = p.GroupCommit.WaitAsync(first, offload: true).AsTask();
        Assert.That(fs.WaitForBlockedSync(Timeout), Is.True);
        var group = new List<Task>();
        long last = -1;
        for (int i = 0; i < 8; i++)
        {
            last = p.Append(new Message(Bytes($"g{i}"))).LastOffset;
            group.Add(p.GroupCommit.WaitAsync(last).AsTask());
        }

        fs.Release();
        await Task.WhenAll(group).WaitAsync(Timeout);
        await firstWait.WaitAsync(Timeout);
        Assert.That(p.HighWatermark, Is.GreaterThan(last));
        Assert.That(p.GroupCommit.LastGroupSize, Is.EqualTo(8), "the eight shared one fsync");

        // Alone now: its leader finds fewer waiters than last time, yields a bounded number of times,
        // and fsyncs for itself.
        int syncsBefore = fs.LogSyncs;
        long lone = p.Append(new Message(Bytes("z"))).LastOffset;
        await p.GroupCommit.WaitAsync(lone).AsTask().WaitAsync(Timeout);
        Assert.That(p.HighWatermark, Is.GreaterThan(lone));
        Assert.That(fs.LogSyncs - syncsBefore, Is.EqualTo(1), "one fsync of its own");
        Assert.That(p.GroupCommit.LastGroupSize, Is.EqualTo(1));
    }
}
