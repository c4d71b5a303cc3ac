using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): group ids and topics were written into the offsets key unchecked. A
/// group id over 32767 UTF-8 bytes overflowed the key's int16 length: the record was written, failed to
/// decode, and every later open of the store failed on it. A lone surrogate was stored as U+FFFD and a
/// non-ASCII topic as '?': the commit landed under another name.
/// </summary>
public sealed class GroupOffsetKeyTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public async Task A_group_id_too_long_for_the_key_format_is_refused_and_the_store_still_opens()
    {
        using var dir = new TempDirectory();
        string group = new('g', 40_000); // the key's group length is an int16
        Exception? thrown = null;
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic("t");
            using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = group });
            try
            {
                await consumer.Commit([new TopicPartitionOffset(T0, 1)]);
            }
            catch (Exception e)
            {
                thrown = e;
            }

            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            Assert.ThrowsAsync<ArgumentException>(async () => await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 1)], group));
            await producer.AbortTransactionAsync();
        }

        Assert.DoesNotThrow(() => LogStore.Open(dir.Path, Options()).Dispose(), "a commit must never make the store unopenable");
        Assert.That(thrown, Is.InstanceOf<ArgumentException>(), "refused before anything is written");
    }

    [Test]
    public async Task Group_ids_and_topics_that_the_key_cannot_hold_are_refused_not_renamed()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        using Consumer surrogate = store.CreateConsumer(new ConsumerOptions { GroupId = "g\uD800" });
        Assert.ThrowsAsync<ArgumentException>(async () => await surrogate.Commit([new TopicPartitionOffset(T0, 1)]),
            "a lone surrogate would be stored as U+FFFD: the commit would land in another group");
        using Consumer plain = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        Assert.ThrowsAsync<ArgumentException>(async () => await plain.Commit([new TopicPartitionOffset(new TopicPartition("t\u00e4", 0), 1)]),
            "a non-ASCII topic would be stored as 't?'");
        Assert.That(store.Groups.Groups(), Is.Empty, "nothing was written under a mangled name");
    }
}
