using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Review: DeleteTopic deletes the groups' offsets of the topic, and a consume loop on a deleted topic
/// now throws TopicNotFoundException. The usual "commit what was read on the way out" then wrote the
/// old positions back: a topic created again under the name started the group at them and skipped
/// the new topic's records (Kafka refuses a commit of an unknown partition).
/// </summary>
public sealed class CommitAfterTopicDeletionTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_commit_after_the_topic_was_deleted_is_refused_and_does_not_reach_the_recreated_topic()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        for (int i = 0; i < 5; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"old{i}"));
        }

        using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            consumer.Assign(T0);
            while (consumer.Consume() is not null)
            {
            }

            store.DeleteTopic("t");
            Assert.Throws<TopicNotFoundException>(() => consumer.Consume());
            Assert.ThrowsAsync<TopicNotFoundException>(async () => await consumer.Commit(), "commit on the way out");
            Assert.ThrowsAsync<TopicNotFoundException>(async () => await consumer.Commit([new TopicPartitionOffset(T0, 5)]));
        }

        store.CreateTopic("t");
        for (int i = 0; i < 8; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"new{i}"));
        }

        Assert.That(store.Groups.Committed("g", T0), Is.Null, "the deleted topic's offset came back");
        using Consumer again = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        again.Assign(T0);
        Assert.That(again.Position(T0), Is.EqualTo(0), "the new topic's first records would be skipped");
    }
}
