using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// A producer keeps a sequence per partition; a topic deleted and created again has new partitions
/// under the old names, which know nothing of the producer (Kafka: a partition with no state for
/// the producer id). The producer used to continue its old sequence there, and every later produce
/// to the new partition failed with <see cref="OutOfOrderSequenceException"/>. It now notices that
/// the partition is another incarnation and starts that partition's sequence again at 0.
/// </summary>
public sealed class RecreatedTopicProducerTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition U0 = new("u", 0);

    private static LogStore OpenWithTopics(TempDirectory dir)
    {
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.CreateTopic("u");
        return store;
    }

    private static (long ProducerId, int LastSequence) LastBatchOf(LogPartition partition, long producerId)
    {
        ProducerStateEntry entry = partition.ProducerState.Get(producerId) ?? throw new AssertionException($"{partition} has no state for producer {producerId}");
        return (entry.ProducerId, entry[entry.BatchCount - 1].LastSequence);
    }

    [Test]
    public async Task An_idempotent_producer_starts_the_recreated_partition_at_sequence_zero_and_keeps_the_others()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        Producer producer = await store.CreateProducerAsync();
        for (int i = 0; i < 3; i++)
        {
            await producer.ProduceAsync(T0, Msg($"old{i}"));
            await producer.ProduceAsync(U0, Msg($"u{i}"));
        }

        store.DeleteTopic("t");
        store.CreateTopic("t");

        DeliveryResult first = await producer.ProduceAsync(T0, Msg("new0"));
        Assert.That((first.Offset, first.IsDuplicate), Is.EqualTo((0L, false)));
        Assert.That(LastBatchOf(store.GetPartition("t", 0), producer.ProducerId).LastSequence, Is.Zero, "the new partition's first batch has sequence 0");
        await producer.ProduceAsync(T0, Msg("new1"));
        Assert.That(LastBatchOf(store.GetPartition("t", 0), producer.ProducerId).LastSequence, Is.EqualTo(1));

        // The other topic's partition is the same incarnation: its sequence goes on (3, not 0).
        await producer.ProduceAsync(U0, Msg("u3"));
        Assert.That(LastBatchOf(store.GetPartition("u", 0), producer.ProducerId).LastSequence, Is.EqualTo(3));

        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "new0", "new1" }));
        Assert.That(Values(store.GetPartition("u", 0), IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "u0", "u1", "u2", "u3" }));
    }

    [Test]
    public async Task A_partitioned_produce_by_topic_name_reaches_the_recreated_topic()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        Producer producer = await store.CreateProducerAsync();
        await producer.ProduceAsync("t", Msg("old"));
        store.DeleteTopic("t");
        Assert.ThrowsAsync<TopicNotFoundException>(async () => await producer.ProduceAsync("t", Msg("gone")));
        Assert.ThrowsAsync<TopicNotFoundException>(async () => await producer.ProduceAsync(T0, Msg("gone")));

        store.CreateTopic("t");
        DeliveryResult result = await producer.ProduceAsync("t", Msg("new"));
        Assert.That(result.Offset, Is.Zero);
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadUncommitted), Is.EqualTo(new[] { "new" }));
    }

    [Test]
    public async Task A_transactional_producer_writes_to_the_recreated_topic_in_its_next_transaction()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("old0"));
        await producer.ProduceAsync(T0, Msg("old1"));
        await producer.ProduceAsync(U0, Msg("u0"));
        await producer.CommitTransactionAsync();

        store.DeleteTopic("t");
        store.CreateTopic("t");

        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("new0"));
        await producer.ProduceAsync(U0, Msg("u1"));
        await producer.CommitTransactionAsync();

        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new0" }));
        Assert.That(Values(store.GetPartition("u", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "u0", "u1" }));
        Assert.That(store.GetPartition("t", 0).LastStableOffset, Is.EqualTo(store.GetPartition("t", 0).LogEndOffset), "the transaction is decided on the new partition");
    }

    [Test]
    public async Task A_transaction_open_on_another_topic_takes_in_the_recreated_one()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("old"));
        await producer.CommitTransactionAsync();

        producer.BeginTransaction();
        await producer.ProduceAsync(U0, Msg("u0"));
        store.DeleteTopic("t"); // allowed: the open transaction has not written to t
        store.CreateTopic("t");
        await producer.ProduceAsync(T0, Msg("new"));
        await producer.CommitTransactionAsync();

        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new" }));
        Assert.That(Values(store.GetPartition("u", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "u0" }));
    }

    [Test]
    public async Task A_transaction_that_wrote_to_the_deleted_topic_cannot_go_on_in_the_new_one_nor_commit()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("old"));
        Assert.Throws<InvalidTransactionStateException>(() => store.DeleteTopic("t"), "the open transaction holds the topic");

        // The only way the topic can go while the producer still thinks its transaction open: the
        // coordinator ended it (timeout or an administrator), which bumps the epoch.
        Assert.That(await store.AbortTransactionAsync("tx"), Is.True);
        store.DeleteTopic("t");
        store.CreateTopic("t");

        Assert.ThrowsAsync<ProducerFencedException>(async () => await producer.ProduceAsync(T0, Msg("zombie")));
        Assert.CatchAsync<ProducerFencedException>(() => producer.CommitTransactionAsync());
        Assert.That(store.GetPartition("t", 0).LogEndOffset, Is.Zero, "nothing of the old transaction reached the new topic");

        await using Producer next = await TransactionalAsync(store, "tx");
        next.BeginTransaction();
        await next.ProduceAsync(T0, Msg("new"));
        await next.CommitTransactionAsync();
        Assert.That(Values(store.GetPartition("t", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new" }));
    }

    [Test]
    public void A_batch_for_a_partition_deleted_after_it_was_looked_up_fails_as_an_unknown_topic()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        LogPartition stale = store.GetPartition("t", 0);
        AppendRaw(store, stale, 77, 0, 0, false, "a");
        store.DeleteTopic("t");
        store.CreateTopic("t");

        // A producer that looked the partition up just before the deletion gets Kafka's unknown-topic
        // error (and retries against whatever the name means now), not the closed log's ObjectDisposedException.
        Assert.Throws<TopicNotFoundException>(() => AppendRaw(store, stale, 77, 0, 1, false, "b"));
        Assert.Throws<TopicNotFoundException>(() => AppendRaw(store, stale, 77, 0, 0, false, "a"), "not a duplicate acknowledged with offsets of a deleted topic");
        Assert.Throws<TopicNotFoundException>(() => stale.Append(Msg("plain")));
        Assert.That(store.GetPartition("t", 0).LogEndOffset, Is.Zero);
    }

    [Test]
    public void The_new_partition_has_no_state_for_the_producer_so_a_resent_old_sequence_is_out_of_order()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopics(dir);
        for (int s = 0; s < 3; s++)
        {
            AppendRaw(store, store.GetPartition("t", 0), 77, 0, s, false, $"v{s}");
        }

        store.DeleteTopic("t");
        store.CreateTopic("t");

        // A resend of batch 2 of the old partition is not a duplicate there: the new partition never saw
        // it and cannot tell, so it refuses the sequence (as Kafka's broker does for an unknown producer).
        LogPartition fresh = store.GetPartition("t", 0);
        OutOfOrderSequenceException e = Assert.Throws<OutOfOrderSequenceException>(() => AppendRaw(store, fresh, 77, 0, 2, false, "v2"))!;
        Assert.That((e.ExpectedSequence, e.ActualSequence), Is.EqualTo((0, 2)));
        Assert.That(fresh.LogEndOffset, Is.Zero);
    }
    [Test]
    public async Task A_topic_deleted_while_a_produce_waits_for_durability_fails_as_an_unknown_topic()
    {
        // ProduceAsync documents TopicNotFoundException for a topic deleted during the call. In GroupCommit
        // the producer appends under its lock and then waits for the fsync outside it: a deletion in between
        // (here run by the partition's batch observer, just after the batch is written) closed the log, and
        // the wait failed with the closed log's ObjectDisposedException.
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(Durability.DurabilityMode.GroupCommit));
        store.CreateTopic("t");
        LogPartition partition = store.GetPartition("t", 0);
        await using Producer producer = await store.CreateProducerAsync();
        partition.Observer = _ =>
        {
            partition.Observer = null;
            store.DeleteTopic("t");
        };

        Assert.ThrowsAsync<TopicNotFoundException>(async () => await producer.ProduceAsync(T0, Msg("gone")));
        Assert.That(partition.Deleted, Is.True, "precondition: the topic was deleted between the write and the durability wait");

        store.CreateTopic("t");
        DeliveryResult next = await producer.ProduceAsync(T0, Msg("new"));
        Assert.That((next.Offset, next.IsDuplicate), Is.EqualTo((0L, false)));
    }
    /// <summary>Deletes the topic and creates it again with one partition while choosing a partition of the old one (once).</summary>
    private sealed class RecreatingPartitioner(LogStore store, int chosen) : IPartitioner
    {
        private bool _done;

        public int Partition(string topic, ReadOnlySpan<byte> key, bool hasKey, int partitionCount)
        {
            if (_done)
            {
                return 0;
            }

            _done = true;
            store.DeleteTopic(topic);
            store.CreateTopic(topic, 1);
            return chosen;
        }
    }

    [Test]
    public async Task A_topic_recreated_with_fewer_partitions_while_the_producer_picks_a_partition_fails_as_an_unknown_topic([Values] bool transactional)
    {
        // ProduceAsync(topic, ...) reads the partition count, lets the partitioner choose, then looks the
        // partition up. A deletion and re-creation with fewer partitions in between made the lookup throw
        // ArgumentOutOfRangeException; the record was partitioned for the deleted topic, which is the
        // documented TopicNotFoundException (the caller's retry partitions for the topic as it is now).
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("w", 3);
        await using Producer producer = await store.CreateProducerAsync(new ProducerOptions
        {
            Partitioner = new RecreatingPartitioner(store, chosen: 2),
            TransactionalId = transactional ? "tx" : null,
        });
        if (transactional)
        {
            await producer.InitTransactionsAsync();
            producer.BeginTransaction();
        }

        Assert.ThrowsAsync<TopicNotFoundException>(async () => await producer.ProduceAsync("w", Msg("lost")));
        Assert.That(store.PartitionCount("w"), Is.EqualTo(1), "precondition: the topic was re-created with fewer partitions during the call");
        Assert.That(store.GetPartition("w", 0).LogEndOffset, Is.Zero, "nothing reached the new topic");

        DeliveryResult next = await producer.ProduceAsync("w", Msg("new"));
        Assert.That((next.TopicPartition, next.Offset), Is.EqualTo((new TopicPartition("w", 0), 0L)));
        if (transactional)
        {
            await producer.CommitTransactionAsync();
        }

        Assert.That(Values(store.GetPartition("w", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new" }));
    }
}
