using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>A member with AutoOffsetReset.Error and a partition without a committed offset can recover (as Kafka's seek after NoOffsetForPartitionException).</summary>
public sealed class ConsumerGroupOffsetResetTests
{
    [Test]
    public void A_member_with_error_reset_can_repair_a_partition_without_a_committed_offset()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 2);
        store.GetPartition("t", 0).Append(Msg("0-0"));
        store.GetPartition("t", 1).Append(Msg("1-0"));
        using (Consumer seed = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            seed.Commit([new TopicPartitionOffset(new TopicPartition("t", 0), 0)]).AsTask().GetAwaiter().GetResult();
        }

        using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = "g", AutoOffsetReset = AutoOffsetReset.Error });
        Assert.Throws<NoOffsetForPartitionException>(() => c.Subscribe("t"));
        Assert.That(c.Assignment, Is.EqualTo(new[] { new TopicPartition("t", 0) }));
        Assert.Throws<NoOffsetForPartitionException>(() => c.Consume(), "every poll throws again");

        // Kafka: the partition is assigned; seek it (or commit it) and go on. Here: commit a start for it.
        Assert.DoesNotThrow(() => c.Commit([new TopicPartitionOffset(new TopicPartition("t", 1), 0)]).AsTask().GetAwaiter().GetResult(),
            "the member cannot commit a starting offset for its own partition");
        var read = new List<string>();
        while (c.Consume() is { } r)
        {
            read.Add(TestRecords.Text(r.Value));
        }

        Assert.That(read, Is.EquivalentTo(new[] { "0-0", "1-0" }));

        // Still fenced: a partition of another member's target, or one it owns.
        using Consumer d = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        d.Subscribe("t");
        Assert.Throws<CommitFailedException>(() => d.Commit([new TopicPartitionOffset(new TopicPartition("t", 0), 0)]).AsTask().GetAwaiter().GetResult());
        Assert.Throws<CommitFailedException>(() => d.Commit([new TopicPartitionOffset(new TopicPartition("t", 1), 0)]).AsTask().GetAwaiter().GetResult(), "c still owns t-1 until its next poll");
    }
}
