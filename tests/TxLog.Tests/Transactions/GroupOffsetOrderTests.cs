using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): a transactional offset commit applied at its COMMIT overwrote a
/// plain commit written after it, so the consumer group went back and re-read records. Kafka keeps the
/// newest write of the offsets log.
/// </summary>
public sealed class GroupOffsetOrderTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_plain_commit_written_after_a_transactional_one_wins_also_after_reopen()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic("t");
            for (int i = 0; i < 20; i++)
            {
                store.GetPartition("t", 0).Append(Msg($"v{i}"));
            }

            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 5)], "g");
            using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
            await consumer.Commit([new TopicPartitionOffset(T0, 10)]);
            await producer.CommitTransactionAsync();
            Assert.That(consumer.Committed(T0), Is.EqualTo(10));
        }

        using LogStore reopened = LogStore.Open(dir.Path, Options());
        using Consumer again = reopened.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        Assert.That(again.Committed(T0), Is.EqualTo(10), "the replay applies the same rule");
    }

    [Test]
    public async Task A_transactional_commit_written_after_a_plain_one_wins()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        await consumer.Commit([new TopicPartitionOffset(T0, 3)]);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 7)], "g");
        Assert.That(consumer.Committed(T0), Is.EqualTo(3), "not before the commit");
        await producer.CommitTransactionAsync();
        Assert.That(consumer.Committed(T0), Is.EqualTo(7));
    }
}
