using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Review: plain commits take effect when acknowledged (4a53467), and DeleteTopic's tombstones cover the
/// keys in effect when it looks (24d5745). A commit appended before the deletion but acknowledged after
/// it (its fsync still running) got no tombstone: it then took effect on the deleted topic, and a topic
/// created again under the name started the group at the old position, skipping its records.
/// </summary>
public sealed class InFlightCommitTopicDeletionTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_commit_still_in_its_fsync_when_the_topic_is_deleted_does_not_survive_the_deletion()
    {
        using var dir = new TempDirectory();
        var fs = new GatedSyncFileSystem();
        var options = new LogStoreOptions { Durability = DurabilityMode.GroupCommit, FileSystem = fs, PreallocateBytes = 0 };
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        for (int i = 0; i < 5; i++)
        {
            await store.GetPartition("t", 0).AppendAsync(Msg($"old{i}"));
        }

        using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            consumer.Assign(T0);
            fs.BlockSyncs();
            Task commit = Task.Run(() => consumer.Commit([new TopicPartitionOffset(T0, 5)]).AsTask());
            Assert.That(fs.WaitForBlockedSync(Tx.Timeout), Is.True, "the commit's fsync started");

            Task delete = Task.Run(() => store.DeleteTopic("t"));
            await Task.WhenAny(delete, Task.Delay(500)); // done now, or waiting for the fsync
            fs.Release();
            await commit.WaitAsync(Tx.Timeout);
            await delete.WaitAsync(Tx.Timeout);
        }

        Assert.That(store.Groups.Committed("g", T0), Is.Null, "the deleted topic has a committed offset");
        store.CreateTopic("t");
        for (int i = 0; i < 8; i++)
        {
            await store.GetPartition("t", 0).AppendAsync(Msg($"new{i}"));
        }

        using (Consumer again = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            again.Assign(T0);
            Assert.That(again.Position(T0), Is.EqualTo(0), "the new topic's first records would be skipped");
        }

        store.Dispose();
        using LogStore reopened = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, PreallocateBytes = 0 });
        Assert.That(reopened.Groups.Committed("g", T0), Is.Null, "after reopen");
    }
}
