using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a review): a batch read with several polls could hold a partition's records
/// twice — the member was evicted and rejoined, or gave the partition up and took it back, in the
/// middle of the batch, each time from the committed offset — and offsets sent with group metadata
/// taken at the send passed, since the member owned the partitions again: an input reached the output
/// twice. Metadata now records the member's ownership when taken, and a send after any change is
/// refused; <see cref="Consumer.ConsumeBatch"/> reads a batch in one poll.
/// </summary>
public sealed class ConsumerGroupBatchFencingTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly TopicPartition Out = new("out", 0);

    private static ConsumerOptions Member() => new() { GroupId = "g", MaxPollInterval = TimeSpan.FromSeconds(10) };

    private static async Task<bool> ProduceAndSendAsync(Producer producer, IReadOnlyList<ConsumeResult> batch, ConsumerGroupMetadata metadata)
    {
        producer.BeginTransaction();
        foreach (ConsumeResult r in batch)
        {
            await producer.ProduceAsync(Out, new Message(r.Value));
        }

        try
        {
            await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(batch[^1].TopicPartition, batch[^1].Offset + 1)], metadata);
            await producer.CommitTransactionAsync();
            return true;
        }
        catch (CommitFailedException)
        {
            await producer.AbortTransactionAsync();
            return false;
        }
    }

    [Test]
    public async Task A_member_evicted_and_rejoined_within_a_batch_cannot_send_its_offsets()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None, clock));
        store.CreateTopic("in", 1);
        store.CreateTopic("other", 1);
        store.CreateTopic("out", 1);
        for (int i = 0; i < 3; i++)
        {
            store.GetPartition("in", 0).Append(Msg($"in-{i}"));
        }

        await using Producer producer = await TransactionalAsync(store, "eos");
        using Consumer a = store.CreateConsumer(Member());
        using Consumer c = store.CreateConsumer(Member());
        a.Subscribe("in");
        c.Subscribe("other"); // same group: its polls look for idle members

        ConsumerGroupMetadata metadata = a.GroupMetadata; // before the batch's first poll
        var batch = new List<ConsumeResult> { a.Consume()! };
        clock.Advance(TimeSpan.FromSeconds(11)); // a processes slowly
        c.Consume(); // evicts a
        batch.Add(a.Consume()!); // a rejoins and takes in-0 again at the committed offset (none: earliest)
        Assert.That(batch.Select(r => Text(r.Value)), Is.EqualTo(new[] { "in-0", "in-0" }), "the setup: one record twice in the batch");

        Assert.That(await ProduceAndSendAsync(producer, batch, metadata), Is.False, "fenced");
        Assert.That(Values(store.GetPartition("out", 0), IsolationLevel.ReadCommitted), Is.Empty);
    }

    [Test]
    public async Task A_partition_given_up_and_taken_back_within_a_batch_fences_its_offsets()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 2);
        store.CreateTopic("out", 1);
        for (int i = 0; i < 3; i++)
        {
            store.GetPartition("t", 1).Append(Msg($"1-{i}"));
        }

        await using Producer producer = await TransactionalAsync(store, "eos");
        using Consumer a = store.CreateConsumer(Member());
        a.Subscribe("t");
        ConsumerGroupMetadata metadata = a.GroupMetadata;
        var batch = new List<ConsumeResult> { a.Consume()! }; // t-1 offset 0
        using (Consumer b = store.CreateConsumer(Member()))
        {
            b.Subscribe("t");
            Assert.That(a.Consume(), Is.Null); // a gives t-1 to b
        }

        batch.Add(a.Consume()!); // b left: a takes t-1 back at the committed offset (none: earliest)
        Assert.That(await ProduceAndSendAsync(producer, batch, metadata), Is.False, "fenced");

        // The same member's next batch, read in one poll, commits.
        a.Seek(new TopicPartition("t", 1), 0);
        IReadOnlyList<ConsumeResult> again = a.ConsumeBatch(10);
        Assert.That(await ProduceAndSendAsync(producer, again, a.GroupMetadata), Is.True);
        Assert.That(Values(store.GetPartition("out", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "1-0", "1-1", "1-2" }));
    }

    [Test]
    public async Task A_batch_of_one_poll_belongs_to_one_assignment_and_commits_unless_the_member_is_evicted()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None, clock));
        store.CreateTopic("t", 2);
        store.CreateTopic("out", 1);
        for (int i = 0; i < 6; i++)
        {
            store.GetPartition("t", i % 2).Append(Msg($"{i % 2}-{i / 2}"));
        }

        await using Producer producer = await TransactionalAsync(store, "eos");
        using Consumer a = store.CreateConsumer(Member());
        a.Subscribe("t");
        IReadOnlyList<ConsumeResult> batch = a.ConsumeBatch(3);
        Assert.That(batch, Has.Count.EqualTo(3));
        ConsumerGroupMetadata metadata = a.GroupMetadata;
        using Consumer b = store.CreateConsumer(Member());
        b.Subscribe("t"); // a rebalance, but a has not polled: it still owns both partitions
        var offsets = new List<TopicPartitionOffset>();
        foreach (IGrouping<TopicPartition, ConsumeResult> g in batch.GroupBy(r => r.TopicPartition))
        {
            offsets.Add(new TopicPartitionOffset(g.Key, g.Max(r => r.Offset) + 1));
        }

        producer.BeginTransaction();
        await producer.SendOffsetsToTransactionAsync(offsets, metadata);
        await producer.CommitTransactionAsync();
        Assert.That(a.Committed(new TopicPartition("t", 0)) + a.Committed(new TopicPartition("t", 1)), Is.EqualTo(3));

        IReadOnlyList<ConsumeResult> next = a.ConsumeBatch(3); // gives t-1 to b first, then reads t-0
        Assert.That(next.Select(r => Text(r.Value)), Is.EqualTo(new[] { "0-2" }));
        metadata = a.GroupMetadata;
        clock.Advance(TimeSpan.FromSeconds(11));
        b.Consume(); // evicts a
        producer.BeginTransaction();
        Assert.ThrowsAsync<CommitFailedException>(async () => await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(new TopicPartition("t", 0), 2)], metadata));
        await producer.AbortTransactionAsync();
    }

    [Test]
    public async Task SeekToCommitted_waits_for_a_transaction_holding_the_partitions_offsets()
    {
        foreach (bool commit in new[] { true, false })
        {
            using var dir = new TempDirectory();
            using LogStore store = LogStore.Open(dir.Path, Options());
            store.CreateTopic("t", 1);
            for (int i = 0; i < 5; i++)
            {
                store.GetPartition("t", 0).Append(Msg($"0-{i}"));
            }

            var tp = new TopicPartition("t", 0);
            using Consumer a = store.CreateConsumer(Member());
            a.Subscribe("t");
            await a.Commit([new TopicPartitionOffset(tp, 1)]);
            while (a.Consume() is not null)
            {
            }

            await using Producer producer = await TransactionalAsync(store, "eos");
            producer.BeginTransaction();
            await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(tp, 3)], a.GroupMetadata);
            Task seek = a.SeekToCommittedAsync();
            await Task.Delay(50);
            Assert.That(seek.IsCompleted, Is.False, $"commit={commit}: the offset is not settled yet");
            Assert.That(a.Position(tp), Is.EqualTo(5));
            if (commit)
            {
                await producer.CommitTransactionAsync();
            }
            else
            {
                await producer.AbortTransactionAsync();
            }

            await seek.WaitAsync(Tx.Timeout);
            Assert.That(a.Position(tp), Is.EqualTo(commit ? 3 : 1));
            Assert.That(Text(a.Consume()!.Value), Is.EqualTo(commit ? "0-3" : "0-1"));
        }
    }
}
