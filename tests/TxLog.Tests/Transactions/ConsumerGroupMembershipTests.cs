using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Consumers of one store that subscribe with the same group share the partitions (range assignor),
/// hand a partition over only when its owner polls, start at the group's committed offset, and are
/// fenced from committing partitions they gave up.
/// </summary>
public sealed class ConsumerGroupMembershipTests
{
    private static TopicPartition P(int partition) => new("t", partition);

    private static LogStore OpenWithTopic(TempDirectory dir, int partitions, int recordsEach)
    {
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", partitions);
        for (int p = 0; p < partitions; p++)
        {
            for (int i = 0; i < recordsEach; i++)
            {
                store.GetPartition("t", p).Append(Msg($"{p}-{i}"));
            }
        }

        return store;
    }

    private static ConsumerOptions Group(string group = "g") => new() { GroupId = group };

    private static List<string> Drain(Consumer consumer)
    {
        var values = new List<string>();
        while (consumer.Consume() is { } r)
        {
            values.Add(Text(r.Value));
        }

        return values;
    }

    [Test]
    public void Members_of_a_group_share_the_partitions_by_range_in_join_order()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 7, 0);
        using Consumer a = store.CreateConsumer(Group());
        using Consumer b = store.CreateConsumer(Group());
        using Consumer c = store.CreateConsumer(Group());
        using Consumer other = store.CreateConsumer(Group("other"));
        a.Subscribe("t");
        Assert.That(a.Assignment, Has.Count.EqualTo(7), "the only member takes every partition");
        b.Subscribe("t");
        c.Subscribe("t");
        other.Subscribe("t");
        Assert.That(b.Assignment, Is.Empty, "a's partitions move only when a polls");
        Assert.That(other.Assignment, Has.Count.EqualTo(7), "another group is independent");

        a.Consume();
        b.Consume();
        c.Consume();
        Assert.That(a.Assignment, Is.EqualTo(new[] { P(0), P(1), P(2) }));
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(3), P(4) }));
        Assert.That(c.Assignment, Is.EqualTo(new[] { P(5), P(6) }));
    }

    [Test]
    public void Each_record_is_read_by_exactly_one_member_across_a_join_and_a_leave()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 4, 10);
        var seen = new List<string>();
        var revoked = new List<TopicPartition>();
        Consumer? first = null;
        var options = Group();
        options.PartitionsRevoked = (consumer, partitions) =>
        {
            revoked.AddRange(partitions);
            consumer.Commit().AsTask().GetAwaiter().GetResult(); // still the owner: its positions count
        };
        first = store.CreateConsumer(options);
        first.Subscribe("t");
        for (int i = 0; i < 15; i++)
        {
            seen.Add(Text(first.Consume()!.Value));
        }

        using (Consumer second = store.CreateConsumer(Group()))
        {
            second.Subscribe("t");
            seen.AddRange(Drain(first)); // this poll gives up partitions 2 and 3 first
            Assert.That(revoked, Is.EqualTo(new[] { P(2), P(3) }));
            Assert.That(second.Assignment, Is.Empty, "taken at second's own next poll");
            seen.AddRange(Drain(second));
            Assert.That(second.Assignment, Is.EqualTo(new[] { P(2), P(3) }));
            for (int p = 0; p < 4; p++)
            {
                store.GetPartition("t", p).Append(Msg($"{p}-late"));
            }

            seen.AddRange(Drain(first));
            seen.AddRange(Drain(second));
            second.Commit().AsTask().GetAwaiter().GetResult();
        }

        seen.AddRange(Drain(first)); // second left: first takes 2 and 3 back, at second's commits
        Assert.That(first.Assignment, Has.Count.EqualTo(4));
        for (int p = 0; p < 4; p++)
        {
            store.GetPartition("t", p).Append(Msg($"{p}-last"));
        }

        seen.AddRange(Drain(first));
        first.Dispose();

        var expected = new List<string>();
        for (int p = 0; p < 4; p++)
        {
            for (int i = 0; i < 10; i++)
            {
                expected.Add($"{p}-{i}");
            }

            expected.Add($"{p}-late");
            expected.Add($"{p}-last");
        }

        Assert.That(seen, Is.EquivalentTo(expected), "no record twice, none skipped");
    }

    [Test]
    public void A_partition_taken_over_starts_at_the_committed_offset_and_the_old_owner_cannot_commit_it()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 2, 5);
        using Consumer a = store.CreateConsumer(Group());
        a.Subscribe("t");
        a.Commit([new TopicPartitionOffset(P(1), 3)]).AsTask().GetAwaiter().GetResult();
        using Consumer b = store.CreateConsumer(Group());
        b.Subscribe("t");
        a.Consume(); // gives up partition 1 (no revoke callback: nothing more committed)
        Assert.That(a.Assignment, Is.EqualTo(new[] { P(0) }));

        CommitFailedException? e = Assert.Throws<CommitFailedException>(() => a.Commit([new TopicPartitionOffset(P(1), 5)]).AsTask().GetAwaiter().GetResult());
        Assert.That(e!.Partition, Is.EqualTo(P(1)));
        Assert.That(e.GroupId, Is.EqualTo("g"));
        Assert.That(a.Committed(P(1)), Is.EqualTo(3), "nothing was committed");

        Assert.That(Drain(b), Is.EqualTo(new[] { "1-3", "1-4" }));
        Assert.Throws<InvalidOperationException>(() => b.Assign(P(0)), "a member cannot assign by hand");
    }

    [Test]
    public async Task A_takeover_waits_for_a_transaction_carrying_the_partitions_offset_and_starts_where_it_leaves_the_group()
    {
        foreach (bool commit in new[] { true, false })
        {
            using var dir = new TempDirectory();
            using LogStore store = OpenWithTopic(dir, 2, 6);
            using Consumer a = store.CreateConsumer(Group());
            a.Subscribe("t");
            await a.Commit([new TopicPartitionOffset(P(1), 2)]);

            await using Producer producer = await TransactionalAsync(store, "tx");
            producer.BeginTransaction();
            await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(P(1), 4)], a.GroupMetadata);

            using Consumer b = store.CreateConsumer(Group());
            b.Subscribe("t");
            a.Consume(); // a lets partition 1 go while the transaction still carries its offset
            Assert.That(a.Assignment, Is.EqualTo(new[] { P(0) }));
            Assert.That(b.Consume(), Is.Null, $"commit={commit}: b must not start at the old offset 2");
            Assert.That(b.Assignment, Is.Empty);

            // The old owner can no longer send offsets of it (its transaction must abort).
            Assert.ThrowsAsync<CommitFailedException>(async () => await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(P(1), 5)], a.GroupMetadata));

            if (commit)
            {
                await producer.CommitTransactionAsync();
            }
            else
            {
                await producer.AbortTransactionAsync();
            }

            Assert.That(Drain(b), Is.EqualTo(commit ? new[] { "1-4", "1-5" } : new[] { "1-2", "1-3", "1-4", "1-5" }), $"commit={commit}");
            Assert.That(b.Assignment, Is.EqualTo(new[] { P(1) }));
        }
    }

    [Test]
    public async Task A_waiting_consume_loop_gives_up_partitions_and_takes_freed_ones_without_new_data()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 2, 0);
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        var revokedInA = new TaskCompletionSource<IReadOnlyList<TopicPartition>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var optionsA = Group();
        optionsA.PartitionsRevoked = (_, partitions) => revokedInA.TrySetResult([.. partitions]);
        using Consumer a = store.CreateConsumer(optionsA);
        a.Subscribe("t");
        var readByA = new List<string>();
        Task loopA = Task.Run(async () =>
        {
            await foreach (ConsumeResult r in a.ConsumeAsync(timeout.Token))
            {
                lock (readByA)
                {
                    readByA.Add(Text(r.Value));
                }
            }
        });

        var assignedInB = new TaskCompletionSource<IReadOnlyList<TopicPartition>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var optionsB = Group();
        optionsB.PartitionsAssigned = (_, partitions) => assignedInB.TrySetResult([.. partitions]);
        using Consumer b = store.CreateConsumer(optionsB);
        b.Subscribe("t"); // a is waiting in its loop with nothing to read: the join must wake it
        Assert.That(await revokedInA.Task.WaitAsync(timeout.Token), Is.EqualTo(new[] { P(1) }));

        await using IAsyncEnumerator<ConsumeResult> loopB = b.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        ValueTask<bool> next = loopB.MoveNextAsync();
        Assert.That(await assignedInB.Task.WaitAsync(timeout.Token), Is.EqualTo(new[] { P(1) }));
        store.GetPartition("t", 1).Append(Msg("for-b"));
        store.GetPartition("t", 0).Append(Msg("for-a"));
        Assert.That(await next, Is.True);
        Assert.That(Text(loopB.Current.Value), Is.EqualTo("for-b"));
        while (true)
        {
            lock (readByA)
            {
                if (readByA.Count > 0)
                {
                    break;
                }
            }

            await Task.Delay(5, timeout.Token);
        }

        timeout.Cancel();
        Assert.CatchAsync<OperationCanceledException>(async () => await loopA);
        Assert.That(readByA, Is.EqualTo(new[] { "for-a" }));
    }

    [Test]
    public async Task Group_metadata_of_a_consumer_with_a_manual_assignment_is_not_fenced()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 1, 3);
        using Consumer manual = store.CreateConsumer(Group());
        manual.Assign(P(0));
        Assert.That(manual.GroupMetadata.MemberId, Is.Null);
        await using Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(P(0), 2)], manual.GroupMetadata);
        await producer.CommitTransactionAsync();
        Assert.That(manual.Committed(P(0)), Is.EqualTo(2));

        using Consumer noGroup = store.CreateConsumer();
        Assert.Throws<InvalidOperationException>(() => _ = noGroup.GroupMetadata);
    }

    [Test]
    public void Unsubscribe_hands_every_partition_to_the_remaining_member_after_the_revoke_callback()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 2, 2);
        var revoked = new List<TopicPartition>();
        var options = Group();
        options.PartitionsRevoked = (consumer, partitions) =>
        {
            revoked.AddRange(partitions);
            consumer.Commit().AsTask().GetAwaiter().GetResult();
        };
        using Consumer a = store.CreateConsumer(Group());
        using Consumer b = store.CreateConsumer(options);
        a.Subscribe("t");
        b.Subscribe("t");
        Assert.That(Text(a.Consume()!.Value), Is.EqualTo("0-0"), "a's poll gives up partition 1 first");
        Assert.That(Drain(b), Is.EqualTo(new[] { "1-0", "1-1" }));
        b.Unsubscribe();
        Assert.That(revoked, Is.EqualTo(new[] { P(1) }));
        Assert.That(b.Assignment, Is.Empty);
        Assert.That(Drain(a), Is.EqualTo(new[] { "0-1" }), "partition 1 resumes after b's committed records");
        Assert.That(a.Assignment, Is.EqualTo(new[] { P(0), P(1) }));
        Assert.That(a.Position(P(1)), Is.EqualTo(2), "from b's commit in its revoke callback");
    }

    [Test]
    public async Task A_member_drops_a_deleted_topics_partitions_and_takes_those_of_the_topic_created_again()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 2, 1);
        store.CreateTopic("u", 1);
        store.GetPartition("u", 0).Append(Msg("u-0"));
        var revoked = new List<TopicPartition>();
        var options = Group();
        options.PartitionsRevoked = (_, partitions) => revoked.AddRange(partitions);
        using Consumer a = store.CreateConsumer(options);
        using Consumer b = store.CreateConsumer(Group());
        a.Subscribe("t", "u");
        b.Subscribe("t");
        Assert.That(Drain(a), Is.EquivalentTo(new[] { "0-0", "u-0" }), "a gave partition t-1 up to b at this poll");
        Assert.That(revoked, Is.EqualTo(new[] { P(1) }));
        Assert.That(Drain(b), Is.EqualTo(new[] { "1-0" }));
        revoked.Clear();

        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loopB = b.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        ValueTask<bool> waiting = loopB.MoveNextAsync(); // b waits, caught up, on t-1
        store.DeleteTopic("t");
        Assert.That(a.Consume()?.Value, Is.Null, "no TopicNotFoundException for a subscribed member");
        Assert.That(a.Assignment, Is.EqualTo(new[] { new TopicPartition("u", 0) }));
        Assert.That(revoked, Is.Empty, "a deleted topic's partitions are dropped without the revoke callback");

        store.CreateTopic("t", 3);
        for (int p = 0; p < 3; p++)
        {
            store.GetPartition("t", p).Append(Msg($"new-{p}"));
        }

        Assert.That(await waiting, Is.True, "b's waiting loop goes on with the topic created again");
        Assert.That(Text(loopB.Current.Value), Is.EqualTo("new-2"));
        Assert.That(Drain(a), Is.EquivalentTo(new[] { "new-0", "new-1" }));

        // Range over the new 3 partitions: a (joined first) 0-1, b 2.
        Assert.That(a.Assignment, Is.EquivalentTo(new[] { P(0), P(1), new TopicPartition("u", 0) }));
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(2) }));
    }

    [Test]
    public void A_revoke_callback_may_dispose_its_consumer_but_not_poll()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWithTopic(dir, 2, 1);
        int revokeCalls = 0;
        Exception? pollInCallback = null;
        Consumer? self = null;
        var options = Group();
        options.PartitionsRevoked = (consumer, _) =>
        {
            revokeCalls++;
            pollInCallback = Assert.Catch(() => consumer.Consume());
            consumer.Commit().AsTask().GetAwaiter().GetResult();
            consumer.Dispose(); // must not call the callback again (it recursed without end)
        };
        self = store.CreateConsumer(options);
        self.Subscribe("t");
        using Consumer other = store.CreateConsumer(Group());
        other.Subscribe("t");
        Assert.That(self.Consume(), Is.Null, "the poll that revoked disposed the consumer inside the callback");
        Assert.That(revokeCalls, Is.EqualTo(1));
        Assert.That(pollInCallback, Is.InstanceOf<InvalidOperationException>());
        Assert.Throws<ObjectDisposedException>(() => self.Consume());
        Assert.That(Drain(other), Is.EquivalentTo(new[] { "0-0", "1-0" }), "the disposed member left: other takes both");
    }
}
