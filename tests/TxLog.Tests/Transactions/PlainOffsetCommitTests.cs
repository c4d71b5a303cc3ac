using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Tests.Faults;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// A plain (non-transactional) offset commit changes what the group reads back only once the commit is
/// acknowledged, as in Kafka, where the coordinator updates its cache when the append succeeds: never
/// while its fsync is running, and never when that fsync fails.
/// </summary>
public sealed class PlainOffsetCommitTests : FaultFixture
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_commit_is_readable_only_after_it_is_acknowledged_and_never_when_its_fsync_fails()
    {
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = Fs;
        options.PreallocateBytes = 0;
        Fs.Targets = path => path.Contains("__consumer_offsets", StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal);
        using LogStore store = LogStore.Open(Dir.Path, options);
        store.CreateTopic("t");
        for (int i = 0; i < 10; i++)
        {
            await store.GetPartition("t", 0).AppendAsync(Msg($"v{i}"));
        }

        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        consumer.Assign(T0);
        await consumer.Commit([new TopicPartitionOffset(T0, 3)]);
        Assert.That(consumer.Committed(T0), Is.EqualTo(3));

        Fs.FailSync(block: true);
        Task pending = Task.Run(() => consumer.Commit([new TopicPartitionOffset(T0, 7)]).AsTask()); // the caller may lead the fsync
        Assert.That(Fs.WaitForBlockedSync(Tx.Timeout), Is.True, "the commit's fsync started");
        Assert.That(pending.IsCompleted, Is.False);
        Assert.That(consumer.Committed(T0), Is.EqualTo(3), "readable while its fsync is still running");
        using (Consumer other = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            other.Assign(T0);
            Assert.That(other.Position(T0), Is.EqualTo(3), "another member started from an unacknowledged commit");
        }

        Fs.ReleaseSync();
        Assert.ThrowsAsync<LogWriteException>(async () => await pending.WaitAsync(Tx.Timeout));
        Assert.That(consumer.Committed(T0), Is.EqualTo(3), "a failed commit changed the committed offset");
    }

    [Test]
    public async Task Concurrent_commits_of_one_partition_leave_the_newest_record_in_effect()
    {
        using var dir = new Storage.TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        consumer.Assign(T0);
        var commits = new List<Task>();
        for (int i = 1; i <= 50; i++)
        {
            commits.Add(consumer.Commit([new TopicPartitionOffset(T0, i)]).AsTask());
        }

        await Task.WhenAll(commits);
        Assert.That(consumer.Committed(T0), Is.EqualTo(50), "acknowledged in any order, the last record written wins");
        store.Dispose();
        using LogStore reopened = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        using Consumer again = reopened.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        Assert.That(again.Committed(T0), Is.EqualTo(50));
    }
}
