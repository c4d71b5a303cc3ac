using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>Offsets sent with group metadata for records of a topic deleted since the batch was read.</summary>
public sealed class ConsumerGroupDeletedTopicFencingTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition Out = new("out", 0);

    private static ConsumerOptions Member(AutoOffsetReset reset = AutoOffsetReset.Earliest) =>
        new() { GroupId = "g", MaxPollInterval = System.Threading.Timeout.InfiniteTimeSpan, AutoOffsetReset = reset };

    // Regression: deleting a subscribed topic took the partition from the member without changing its
    // ownership (the stale owner entry stays until the member's next poll), so offsets of the deleted
    // topic's records, sent with metadata taken after the batch, passed the fence and became the
    // recreated topic's committed offset: the new topic's first records were skipped.
    [Test]
    public async Task Offsets_of_a_deleted_topics_batch_are_refused_and_do_not_skip_the_recreated_topic()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.CreateTopic("out");
        for (int i = 0; i < 5; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"old{i}"));
        }

        await using Producer producer = await TransactionalAsync(store, "eos");
        using Consumer a = store.CreateConsumer(Member());
        a.Subscribe("t");
        IReadOnlyList<ConsumeResult> batch = a.ConsumeBatch(10);
        Assert.That(batch, Has.Count.EqualTo(5), "precondition");
        ConsumerGroupMetadata metadata = a.GroupMetadata; // right after the batch's one poll

        store.DeleteTopic("t");
        store.CreateTopic("t");
        for (int i = 0; i < 8; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"new{i}"));
        }

        producer.BeginTransaction();
        foreach (ConsumeResult r in batch)
        {
            await producer.ProduceAsync(Out, new Message(r.Value));
        }

        bool sent;
        try
        {
            await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 5)], metadata);
            await producer.CommitTransactionAsync();
            sent = true;
        }
        catch (CommitFailedException)
        {
            await producer.AbortTransactionAsync();
            await a.SeekToCommittedAsync();
            sent = false;
        }

        var seen = new List<string>();
        for (int i = 0; i < 10; i++)
        {
            foreach (ConsumeResult r in a.ConsumeBatch(100))
            {
                seen.Add(Text(r.Value));
            }
        }

        Assert.That(store.Groups.Committed("g", T0), Is.Null, $"sent={sent}: the deleted topic's offset reached the recreated topic");
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, 8).Select(i => $"new{i}")), "the recreated topic's records");
    }

    // Regression: the check ran before the offsets partition's append lock, so a commit (plain, or sent
    // with metadata) that passed it just before DeleteTopic retired the topic could append after the
    // deletion's tombstones, and its offsets outlived the topic. Now the check runs under that lock,
    // which the tombstones take after the retirement. Here the test holds the lock while the deletion
    // retires the topic and the commit arrives: whichever goes first, the commit must be refused and
    // the group must keep no offset of the deleted topic.
    [TestCase(false)]
    [TestCase(true)]
    public void A_commit_racing_a_topic_deletion_never_outlives_its_tombstones(bool transactional)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        for (int i = 0; i < 3; i++)
        {
            store.GetPartition("t", 0).Append(Msg($"v{i}"));
        }

        using Consumer a = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        a.Assign(T0);
        while (a.Consume() is not null)
        {
        }

        Producer producer = TransactionalAsync(store, "eos").GetAwaiter().GetResult();
        producer.BeginTransaction();
        ConsumerGroupMetadata metadata = a.GroupMetadata;
        LogPartition partition = store.GetPartition("t", 0);
        object appendLock = store.Groups.Partition.AppendLock;
        Task deletion;
        Task commit;
        Monitor.Enter(appendLock);
        try
        {
            deletion = Task.Run(() => store.DeleteTopic("t")); // retires the topic, then waits for the lock
            SpinWait.SpinUntil(() => partition.Retired, Tx.Timeout);
            Assert.That(partition.Retired, Is.True, "precondition: the deletion retired the topic");
            commit = transactional
                ? Task.Run(async () => await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 3)], metadata))
                : Task.Run(async () => await a.Commit([new TopicPartitionOffset(T0, 3)]));
            Thread.Sleep(50); // let it reach the lock
        }
        finally
        {
            Monitor.Exit(appendLock);
        }

        Assert.That(deletion.Wait(Tx.Timeout), Is.True);
        Assert.That(() => commit.GetAwaiter().GetResult(), Throws.InstanceOf<TopicNotFoundException>(), "refused: its topic is being deleted");
        if (transactional)
        {
            producer.CommitTransactionAsync().GetAwaiter().GetResult();
        }

        producer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Assert.That(store.Groups.Committed("g", T0), Is.Null, "no offset of the deleted topic survives");
    }
}
