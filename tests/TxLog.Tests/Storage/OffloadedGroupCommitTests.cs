using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

/// <summary>
/// Offloaded group-commit waits (a multi-partition commit's data and decision, fsynced on the
/// partition's flusher thread) mixed with caller-side ones: every wait completes once its offset is
/// durable, also when the gate is disposed while its flusher is in an fsync.
/// </summary>
public class OffloadedGroupCommitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Test]
    public void Disposing_the_gate_while_its_flusher_is_blocked_completes_every_offloaded_wait()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, FileSystem = fs, PreallocateBytes = 0 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);

        fs.BlockSyncs();
        long first = p.Append(new Message(Bytes("a"))).LastOffset;
        Task firstWait = p.GroupCommit.WaitAsync(first, offload: true).AsTask();
        Assert.That(fs.WaitForBlockedSync(Timeout), Is.True, "the flusher reached the fsync");

        // Appended after that fsync started: it needs one more flush, asked for after Dispose began.
        long second = p.Append(new Message(Bytes("b"))).LastOffset;
        Task secondWait = p.GroupCommit.WaitAsync(second, offload: true).AsTask();
        p.GroupCommit.Dispose();
        fs.Release();

        Assert.That(Task.WaitAll([firstWait, secondWait], Timeout), Is.True, "both waits completed");
        Assert.That(firstWait.IsCompletedSuccessfully && secondWait.IsCompletedSuccessfully, Is.True);
        Assert.That(p.HighWatermark, Is.GreaterThan(second), "the second offset is durable too");
    }

    [Test]
    public async Task Mixed_caller_side_and_offloaded_waits_all_complete_with_their_offsets_durable()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, PreallocateBytes = 0 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);

        async Task<long> CallerSide(int n)
        {
            long last = -1;
            for (int i = 0; i < 50; i++)
            {
                AppendResult r = await p.AppendAsync(new Message(Bytes($"c{n}-{i}")));
                Assert.That(p.HighWatermark, Is.GreaterThan(r.LastOffset), "acknowledged only once durable");
                last = r.LastOffset;
            }

            return last;
        }

        async Task<long> Offloaded(int n)
        {
            long last = -1;
            for (int i = 0; i < 50; i++)
            {
                long offset = p.Append(new Message(Bytes($"o{n}-{i}"))).LastOffset;
                await p.GroupCommit.WaitAsync(offset, offload: true);
                Assert.That(p.HighWatermark, Is.GreaterThan(offset), "completed only once durable");
                last = offset;
            }

            return last;
        }

        var writers = new List<Task<long>>();
        for (int n = 0; n < 4; n++)
        {
            int id = n;
            writers.Add(Task.Run(() => CallerSide(id)));
            writers.Add(Task.Run(() => Offloaded(id)));
        }

        Task all = Task.WhenAll(writers);
        Assert.That(await Task.WhenAny(all, Task.Delay(Timeout)), Is.SameAs(all), "no wait was left behind");
        Assert.That(p.LogEndOffset, Is.EqualTo(400));
        Assert.That(p.HighWatermark, Is.EqualTo(400));
    }
}
