using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;
using TxLog.Tests.Faults;

namespace TxLog.Tests.Storage;

/// <summary>
/// Regression (found by a bug hunt): <see cref="LogStore.EnforceRetention"/> stopped at the first
/// partition that had failed (LogWriteException) and left the healthy partitions after it untrimmed,
/// while the background retention skips failed partitions. It now trims every healthy partition; a
/// failed one is skipped, and an I/O error met while trimming is thrown after the others are trimmed.
/// </summary>
public sealed class RetentionWithFailedPartitionTests
{
    private static LogStore OpenWithThreeFullTopics(string path, IFileSystem fs)
    {
        LogStore store = LogStore.Open(path, new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 1000,
            RetentionBytes = 1,
            RetentionCheckInterval = TimeSpan.FromHours(1), // the test runs retention itself
            PreallocateBytes = 0,
            FileSystem = fs,
        });
        foreach (string topic in new[] { "a", "b", "c" })
        {
            store.CreateTopic(topic);
            LogPartition p = store.GetPartition(topic, 0);
            for (int i = 0; i < 20; i++)
            {
                p.Append(new Message(new byte[100]));
            }

            Assert.That(p.SegmentCount, Is.GreaterThan(1), $"precondition: {topic} has segments to delete");
        }

        return store;
    }

    [Test]
    public void A_failed_partition_is_skipped_and_the_healthy_ones_after_it_are_trimmed()
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem { Targets = static path => path.Contains("b-0", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal) };
        using LogStore store = OpenWithThreeFullTopics(dir.Path, fs);
        LogPartition b = store.GetPartition("b", 0);
        fs.FailWrite();
        Assert.Throws<LogWriteException>(() => b.Append(new Message(new byte[100])), "precondition: b-0 fails");
        int bSegments = b.SegmentCount;

        int deleted = 0;
        Assert.DoesNotThrow(() => deleted = store.EnforceRetention());

        Assert.That(store.GetPartition("a", 0).SegmentCount, Is.EqualTo(1));
        Assert.That(store.GetPartition("c", 0).SegmentCount, Is.EqualTo(1), "the partition after the failed one is trimmed too");
        Assert.That(b.SegmentCount, Is.EqualTo(bSegments), "the failed partition is left as it is");
        Assert.That(deleted, Is.GreaterThanOrEqualTo(2));
    }

    [Test]
    public void An_io_error_while_trimming_is_thrown_after_the_other_partitions_are_trimmed()
    {
        using var dir = new TempDirectory();
        var fs = new DeleteHookFileSystem();
        using LogStore store = OpenWithThreeFullTopics(dir.Path, fs);

        // Retention reaches a-0 first (topics in creation order): deleting its first segment fails.
        fs.OnNextDelete(Path.Combine("a-0", LogSegment.FileName(0, ".log")), static () => throw new IOException("injected delete failure"));

        IOException? thrown = Assert.Throws<IOException>(() => store.EnforceRetention());

        Assert.That(thrown!.Message, Is.EqualTo("injected delete failure"));
        Assert.That(store.GetPartition("b", 0).SegmentCount, Is.EqualTo(1), "the partitions after the one that failed are trimmed");
        Assert.That(store.GetPartition("c", 0).SegmentCount, Is.EqualTo(1));
    }
}
