using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>
/// Regression (found by the chaos stress, <c>ChaosStressTests</c>): an append that rolls a segment writes
/// a producer-state snapshot after the log has taken the batch, still under the partition's append lock.
/// <see cref="LogStore.DeleteTopic"/> closed the log and deleted the partition's directory without that
/// lock, so the snapshot could be created while the directory was being deleted: DeleteTopic then threw
/// <see cref="IOException"/> ("Directory not empty") after the topic was already gone from the list,
/// leaving a stale snapshot in a directory that a topic created again under the name reuses.
/// </summary>
public sealed class SnapshotDuringTopicDeletionTests
{
    private sealed class SnapshotDeleteFileSystem : DelegatingFileSystem
    {
        public readonly ManualResetEventSlim AtSnapshot = new();
        public readonly ManualResetEventSlim Deleting = new();
        public readonly ManualResetEventSlim SnapshotOpened = new();
        public volatile bool Armed;
        public volatile bool WrittenDuringDeletion;

        public override IStorageFile OpenFile(string path, FileOpenMode mode)
        {
            if (Armed && path.Contains("t-0", StringComparison.Ordinal) && path.Contains(".snapshot", StringComparison.Ordinal))
            {
                Armed = false;
                AtSnapshot.Set();
                // The deletion either starts now (the bug) or waits for this append to finish (fixed):
                // a bounded wait, since a deletion blocked on the append lock never signals.
                Deleting.Wait(TimeSpan.FromMilliseconds(300));
                WrittenDuringDeletion = Deleting.IsSet;
                try
                {
                    return base.OpenFile(path, mode);
                }
                finally
                {
                    SnapshotOpened.Set();
                }
            }

            return base.OpenFile(path, mode);
        }

        public override void DeleteDirectory(string path)
        {
            if (path.EndsWith("t-0", StringComparison.Ordinal))
            {
                Deleting.Set();
                SnapshotOpened.Wait(TimeSpan.FromSeconds(5));
            }

            base.DeleteDirectory(path);
        }
    }

    [Test]
    public async Task A_topic_deleted_while_an_append_writes_its_roll_snapshot_waits_for_it()
    {
        using var dir = new TempDirectory();
        var fs = new SnapshotDeleteFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 1000,
            PreallocateBytes = 0,
            FileSystem = fs,
        });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        fs.Armed = true;
        Task appends = Task.Run(() =>
        {
            while (p.SegmentCount == 1)
            {
                p.Append(new Message(new byte[100])); // the append that rolls writes a snapshot
            }
        });
        Assert.That(fs.AtSnapshot.Wait(TimeSpan.FromSeconds(20)), Is.True, "precondition: a roll writes a snapshot");

        Task deletion = Task.Run(() => store.DeleteTopic("t"));
        await appends;
        Assert.DoesNotThrowAsync(async () => await deletion);
        Assert.That(fs.WrittenDuringDeletion, Is.False, "no file is written into a partition directory being deleted");
        Assert.That(Directory.Exists(Path.Combine(dir.Path, "t-0")), Is.False);
    }
}
