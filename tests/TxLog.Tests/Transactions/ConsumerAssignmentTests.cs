using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): Assign (and Subscribe with a topic named twice) kept a partition
/// listed twice as two assignments, each with its own position: every record was returned twice, Seek
/// moved only one of them and Commit wrote both positions.
/// </summary>
public sealed class ConsumerAssignmentTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public void Assigning_a_partition_twice_delivers_each_record_once()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("a"));
        store.GetPartition("t", 0).Append(Msg("b"));
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0, T0);
        var seen = new List<long>();
        while (consumer.Consume() is { } r)
        {
            seen.Add(r.Offset);
        }

        Assert.That(seen, Is.EqualTo(new long[] { 0, 1 }));
        Assert.That(consumer.Assignment, Is.EqualTo(new[] { T0 }));

        consumer.Subscribe("t", "t");
        Assert.That(consumer.Assignment, Is.EqualTo(new[] { T0 }), "a topic named twice is subscribed once");
        consumer.Seek(T0, 1);
        Assert.That(consumer.Consume()?.Offset, Is.EqualTo(1), "Seek moves the only position");
        Assert.That(consumer.Consume(), Is.Null);
    }
}
