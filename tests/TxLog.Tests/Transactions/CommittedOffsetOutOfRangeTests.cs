using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): a committed offset below the log start (its records deleted by
/// retention) was clamped to the log start whatever AutoOffsetReset said: Error skipped the lost records
/// silently and Latest re-read the whole log. As Kafka's auto.offset.reset, the policy now decides.
/// </summary>
public sealed class CommittedOffsetOutOfRangeTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_committed_offset_below_the_log_start_follows_AutoOffsetReset()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options();
        options.SegmentBytes = 1024;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 1, new TopicOptions { RetentionBytes = 2048 });
        using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            await consumer.Commit([new TopicPartitionOffset(T0, 0)]);
        }

        for (int i = 0; i < 200; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"value-{i:D4}-padding-padding-padding"));
        }

        store.EnforceRetention();
        Assume.That(store.GetPartition("t", 0).LogStartOffset, Is.GreaterThan(0));
        using Consumer strict = store.CreateConsumer(new ConsumerOptions { GroupId = "g", AutoOffsetReset = AutoOffsetReset.Error });
        OffsetOutOfRangeException? lost = Assert.Throws<OffsetOutOfRangeException>(() => strict.Assign(T0), "records were lost to retention: Error must not skip them silently");
        Assert.That(lost!.Offset, Is.Zero, "the exception names the committed offset");
        using Consumer latest = store.CreateConsumer(new ConsumerOptions { GroupId = "g", AutoOffsetReset = AutoOffsetReset.Latest });
        latest.Assign(T0);
        Assert.That(latest.Position(T0), Is.EqualTo(200));
        using Consumer earliest = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        earliest.Assign(T0);
        Assert.That(earliest.Position(T0), Is.EqualTo(store.GetPartition("t", 0).LogStartOffset));
    }

    [Test]
    public void Error_without_a_committed_offset_throws_a_no_offset_error_naming_partition_and_group()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Tx.Options());
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("a"));

        using Consumer grouped = store.CreateConsumer(new ConsumerOptions { GroupId = "fresh", AutoOffsetReset = AutoOffsetReset.Error });
        NoOffsetForPartitionException? e = Assert.Throws<NoOffsetForPartitionException>(() => grouped.Assign(T0));
        Assert.That((e!.Partition, e.GroupId, e.Offset), Is.EqualTo((T0, "fresh", -1L)));
        Assert.That(e.Message, Does.Contain("no committed offset for group 'fresh'").And.Not.Contain("Offset -1"));
        Assert.That(e, Is.InstanceOf<OffsetOutOfRangeException>(), "existing catch blocks still see it");

        using Consumer groupless = store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = AutoOffsetReset.Error });
        e = Assert.Throws<NoOffsetForPartitionException>(() => groupless.Assign(T0));
        Assert.That(e!.GroupId, Is.Null);
        Assert.That(e.Message, Does.Contain("no group"));
    }
}
