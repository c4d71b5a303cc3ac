using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): DeleteTopic left every group's committed offsets of the topic. A
/// topic created again under the name started each group's consumers at the old offsets: the new topic's
/// records below them were skipped silently (Kafka deletes the offsets of a deleted topic).
/// </summary>
public sealed class DeletedTopicOffsetsTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition Other = new("other", 0);

    [Test]
    public async Task A_recreated_topic_does_not_inherit_the_deleted_topics_committed_offsets()
    {
        using var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        for (int i = 0; i < 10; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"old{i}"));
        }

        using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            consumer.Assign(T0);
            while (consumer.Consume() is not null)
            {
            }

            await consumer.Commit();
            await consumer.Commit([new TopicPartitionOffset(Other, 4)]);
            Assert.That(consumer.Committed(T0), Is.EqualTo(10));
        }

        store.DeleteTopic("t");
        store.CreateTopic("t");
        for (int i = 0; i < 3; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"new{i}"));
        }

        using Consumer again = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        again.Assign(T0);
        var values = new List<string>();
        while (again.Consume() is { } r)
        {
            values.Add(Text(r.Value));
        }

        Assert.That(values, Is.EqualTo(new[] { "new0", "new1", "new2" }), "the new topic's records are not skipped");
        Assert.That(store.Groups.Committed("g", T0), Is.Null);
        Assert.That(store.Groups.Committed("g", Other), Is.EqualTo(4), "other topics keep their offsets");
        store.Dispose();

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        Assert.That(reopened.Groups.Committed("g", T0), Is.Null, "the deletion survives reopen");
        Assert.That(reopened.Groups.Committed("g", Other), Is.EqualTo(4));
    }
}
