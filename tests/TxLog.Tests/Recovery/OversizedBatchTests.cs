using TxLog.Durability;
using TxLog.Records;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Recovery;

public sealed class OversizedBatchTests
{
    [Test]
    public void Recovery_with_a_smaller_MaxBatchBytes_refuses_instead_of_cutting_a_valid_large_batch()
    {
        // Regression: MaxBatchBytes is a setting, not stored on disk. After a crash, an open with a
        // smaller limit took a committed 2 MiB batch for a torn tail and truncated it.
        using var dir = new TempDirectory();
        string segment = WriteSmallAndBigBatchThenCrash(dir.Path, out LogStoreOptions big);
        long length = new FileInfo(segment).Length;

        var e = Assert.Throws<BatchTooLargeForConfigurationException>(() => LogStore.Open(dir.Path, new LogStoreOptions { PreallocateBytes = 0 }));
        Assert.Multiple(() =>
        {
            Assert.That(e!.FilePath, Is.EqualTo(segment));
            Assert.That(e.BatchSize, Is.GreaterThan(2 << 20));
            Assert.That(new FileInfo(segment).Length, Is.EqualTo(length), "nothing was cut");
        });

        using LogStore reopened = LogStore.Open(dir.Path, big);
        LogPartition again = reopened.GetPartition("big", 0);
        Assert.That(again.LogEndOffset, Is.EqualTo(2));
        using LogReader reader = again.OpenReader(1);
        Assert.That(reader.TryRead(out Record record), Is.True);
        Assert.That(record.Value.Length, Is.EqualTo(2 << 20));
    }

    [Test]
    public void A_torn_large_batch_is_still_cut_as_a_torn_tail()
    {
        using var dir = new TempDirectory();
        string segment = WriteSmallAndBigBatchThenCrash(dir.Path, out _);
        long full = new FileInfo(segment).Length;
        using (FileStream f = new(segment, FileMode.Open))
        {
            f.SetLength(full - 1000); // the big batch lost its end
        }

        using LogStore reopened = LogStore.Open(dir.Path, new LogStoreOptions { PreallocateBytes = 0 });
        Assert.That(reopened.GetPartition("big", 0).LogEndOffset, Is.EqualTo(1), "the torn batch was cut, the first kept");
        Assert.That(reopened.Recovery.TruncatedBytes, Is.GreaterThan(0));
    }

    // Under MaxBatchBytes = 4 MiB: a 100-byte batch, then a 2 MiB one, flushed; then the clean-shutdown
    // marker is removed, as after a crash. Returns the segment file.
    private static string WriteSmallAndBigBatchThenCrash(string directory, out LogStoreOptions big)
    {
        big = new LogStoreOptions { Durability = DurabilityMode.GroupCommit, MaxBatchBytes = 4 << 20, PreallocateBytes = 0 };
        using (LogStore store = LogStore.Open(directory, big))
        {
            store.CreateTopic("big");
            LogPartition p = store.GetPartition("big", 0);
            p.Append(new Message(new byte[100]));
            p.Append(new Message(new byte[2 << 20]));
            p.FlushAsync().AsTask().Wait();
        }

        File.Delete(Path.Combine(directory, LogStore.CleanShutdownFileName));
        return Directory.GetFiles(Path.Combine(directory, "big-0"), "*.log").Single();
    }
}
