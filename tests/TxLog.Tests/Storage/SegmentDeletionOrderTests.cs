using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>
/// Retention deletes the oldest segments first. A file system may persist unlinks that were not followed
/// by a directory fsync in any order (ext4 without a journal does, as on the CI machine): if the deletion
/// of a later segment survived a power cut while the deletion of an earlier one did not, the directory
/// would hold segments with a gap between them, and the next open refuses that as corruption. So each
/// segment's deletion must be made durable (directory fsync) before the next segment is deleted.
/// </summary>
public sealed class SegmentDeletionOrderTests
{
    /// <summary>Records the file-system steps in one partition directory.</summary>
    private sealed class StepRecorder : DelegatingFileSystem
    {
        public List<string> Steps { get; } = new();

        public bool Recording { get; set; }

        public override void DeleteFile(string path)
        {
            base.DeleteFile(path);
            if (Recording && path.EndsWith(".log", StringComparison.Ordinal))
            {
                lock (Steps)
                {
                    Steps.Add("delete " + Path.GetFileName(path));
                }
            }
        }

        public override void SyncDirectory(string path)
        {
            base.SyncDirectory(path);
            if (Recording)
            {
                lock (Steps)
                {
                    Steps.Add("sync-dir");
                }
            }
        }
    }

    [Test]
    public void Every_segment_deletion_is_durable_before_the_next_segment_is_deleted()
    {
        using var dir = new TempDirectory();
        var fs = new StepRecorder();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 1000,
            RetentionBytes = 1,
            RetentionCheckInterval = TimeSpan.FromHours(1), // the test runs retention itself
            FileSystem = fs,
        });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 40; i++)
        {
            p.Append(new Message(new byte[100]));
        }

        int before = p.SegmentCount;
        Assert.That(before, Is.GreaterThanOrEqualTo(4), "precondition: several segments to delete at once");

        fs.Recording = true;
        int deleted = store.EnforceRetention();
        fs.Recording = false;

        Assert.That(deleted, Is.EqualTo(before - 1), "precondition: all but the active segment go in one call");
        List<string> deletes = fs.Steps.FindAll(s => s.StartsWith("delete ", StringComparison.Ordinal));
        Assert.That(deletes, Has.Count.EqualTo(deleted));
        for (int i = 0; i < fs.Steps.Count; i++)
        {
            if (!fs.Steps[i].StartsWith("delete ", StringComparison.Ordinal))
            {
                continue;
            }

            int next = fs.Steps.FindIndex(i + 1, s => s.StartsWith("delete ", StringComparison.Ordinal));
            int sync = fs.Steps.IndexOf("sync-dir", i + 1);
            Assert.That(sync, Is.GreaterThan(i), $"the deletion of {fs.Steps[i]} is made durable: {string.Join(", ", fs.Steps)}");
            if (next >= 0)
            {
                Assert.That(sync, Is.LessThan(next), $"a directory fsync between {fs.Steps[i]} and {fs.Steps[next]}: {string.Join(", ", fs.Steps)}");
            }
        }

        Assert.That(string.Join(",", deletes), Is.EqualTo(string.Join(",", deletes.OrderBy(d => d, StringComparer.Ordinal))), "oldest first");
    }
}
