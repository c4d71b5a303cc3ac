using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Tests.Diagnostics;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Kafka's <c>max.poll.interval.ms</c>: a group member that stops polling (stuck, or dropped without
/// Dispose) is evicted and the others take its partitions; its commits of them fail; it rejoins at its
/// next poll. A member waiting in its consume loop is polling and is never evicted.
/// </summary>
public sealed class ConsumerGroupEvictionTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static TopicPartition P(int partition) => new("t", partition);

    private static LogStore Open(TempDirectory dir, ManualClock clock, ListLoggerFactory? logs = null, TimeSpan? backgroundPass = null)
    {
        LogStoreOptions options = Options(DurabilityMode.None, clock);
        options.LoggerFactory = logs;
        if (backgroundPass is { } pass)
        {
            options.RetentionCheckInterval = pass;
        }

        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        for (int p = 0; p < 2; p++)
        {
            for (int i = 0; i < 3; i++)
            {
                store.GetPartition("t", p).Append(Msg($"{p}-{i}"));
            }
        }

        return store;
    }

    private static ConsumerOptions Member(TimeSpan? maxPoll = null) => new() { GroupId = "g", MaxPollInterval = maxPoll ?? TimeSpan.FromSeconds(10) };

    [Test]
    public void A_member_that_stops_polling_is_evicted_at_another_members_poll_and_rejoins_at_its_own()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        var logs = new ListLoggerFactory();
        using LogStore store = Open(dir, clock, logs);
        var revokedFromA = new List<TopicPartition>();
        ConsumerOptions optionsA = Member();
        optionsA.PartitionsRevoked = (_, partitions) => revokedFromA.AddRange(partitions);
        using Consumer a = store.CreateConsumer(optionsA);
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        Assert.That(a.Consume()!.Offset, Is.EqualTo(0)); // gives t-1 to b
        revokedFromA.Clear();
        Assert.That(b.Consume()!.TopicPartition, Is.EqualTo(P(1)));
        a.Commit().AsTask().GetAwaiter().GetResult(); // t-0 at 1

        while (b.Consume() is not null)
        {
        }

        clock.Advance(TimeSpan.FromSeconds(9));
        Assert.That(b.Consume(), Is.Null);
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(1) }), "within its interval a keeps t-0");

        clock.Advance(TimeSpan.FromSeconds(2)); // a idle for 11 s
        ConsumeResult? taken = b.Consume();
        Assert.That((taken?.TopicPartition, taken?.Offset), Is.EqualTo((P(0), 1L)), "b's poll evicted a and took t-0 at a's committed offset");
        Assert.That(b.Assignment, Is.EquivalentTo(new[] { P(0), P(1) }));
        Logged evicted = logs.WithId(7002).Single();
        Assert.That(evicted.Fields["Partitions"], Is.EqualTo(1));
        Assert.That(evicted.Fields["IdleMs"], Is.EqualTo(11_000L));

        Assert.Throws<CommitFailedException>(() => a.Commit().AsTask().GetAwaiter().GetResult(), "an evicted member's commit is fenced");
        Assert.That(store.Groups.Committed("g", P(0)), Is.EqualTo(1));

        Assert.That(a.Consume(), Is.Null, "a rejoins: nothing of its own until b lets a partition go");
        Assert.That(revokedFromA, Is.Empty, "lost partitions are not revoked through the callback");
        Assert.That(a.Assignment, Is.Empty);
        b.Consume(); // b (now first in join order) keeps t-0 and gives t-1 back
        a.Consume();
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(0) }));
        Assert.That(a.Assignment, Is.EqualTo(new[] { P(1) }));
    }

    [Test]
    public async Task A_member_waiting_in_its_consume_loop_is_never_idle()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = Open(dir, clock);
        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loop = a.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var seen = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            Assert.That(await loop.MoveNextAsync(), Is.True);
            seen.Add(Text(loop.Current.Value));
        }

        Assert.That(seen, Is.EqualTo(new[] { "0-0", "0-1", "0-2" }), "a gave t-1 up at its first poll");
        ValueTask<bool> waiting = loop.MoveNextAsync(); // caught up: waits
        Assert.That(b.Consume(), Is.Not.Null);
        clock.Advance(TimeSpan.FromHours(1));
        while (b.Consume() is not null)
        {
        }

        Assert.That(b.Assignment, Is.EqualTo(new[] { P(1) }), "a, waiting for data, was not evicted");
        store.GetPartition("t", 0).Append(Msg("0-late"));
        Assert.That(await waiting, Is.True);
        Assert.That(Text(loop.Current.Value), Is.EqualTo("0-late"));
    }

    [Test]
    public async Task The_background_loop_evicts_a_member_dropped_without_dispose_and_wakes_the_waiting_one()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = Open(dir, clock, backgroundPass: TimeSpan.FromMilliseconds(20));
        Consumer dropped = store.CreateConsumer(Member());
        dropped.Subscribe("t");
        using Consumer b = store.CreateConsumer(Member());
        b.Subscribe("t");
        dropped.Consume(); // gives t-1 to b, then is never used again (and never disposed)

        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loop = b.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var seen = new List<string>();
        for (int i = 0; i < 3; i++)
        {
            Assert.That(await loop.MoveNextAsync(), Is.True);
            seen.Add(Text(loop.Current.Value));
        }

        Assert.That(seen, Is.EqualTo(new[] { "1-0", "1-1", "1-2" }));
        ValueTask<bool> waiting = loop.MoveNextAsync(); // b waits: nobody polls now
        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.That(await waiting, Is.True, "a background pass evicted the dropped member; b took t-0");
        Assert.That(loop.Current.TopicPartition, Is.EqualTo(P(0)));
        Assert.That(Text(loop.Current.Value), Is.EqualTo("0-0"), "from the committed offset: none, so the earliest (the dropped member's read was never committed)");
    }

    [Test]
    public void A_max_poll_interval_that_is_not_positive_is_refused()
    {
        using var dir = new TempDirectory();
        using LogStore store = Open(dir, new ManualClock(Start, manualTimestamp: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CreateConsumer(Member(TimeSpan.Zero)));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CreateConsumer(Member(TimeSpan.FromSeconds(-1))));
        using Consumer never = store.CreateConsumer(Member(System.Threading.Timeout.InfiniteTimeSpan));
        never.Subscribe("t");
        Assert.That(never.Assignment, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task A_member_waiting_for_stable_offsets_is_not_idle()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = Open(dir, clock);
        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        a.Consume(); // gives t-1 to b
        b.Consume();
        await using Producers.Producer producer = await TransactionalAsync(store, "tx");
        producer.BeginTransaction();
        await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(P(0), 2)], a.GroupMetadata);
        Task seek = a.SeekToCommittedAsync(); // waits: the transaction holds t-0's offset
        clock.Advance(TimeSpan.FromMinutes(1));
        b.Consume();
        await producer.CommitTransactionAsync();
        await seek.WaitAsync(Tx.Timeout);
        Assert.That(a.Position(P(0)), Is.EqualTo(2));
        Assert.That(Text(a.Consume()!.Value), Is.EqualTo("0-2"), "a, waiting in SeekToCommittedAsync, was not evicted (an evicted member would rejoin with nothing)");
        Assert.That(a.Assignment, Is.EqualTo(new[] { P(0) }));
    }

    [Test]
    public void Poll_deadlines_run_on_the_monotonic_clock_so_wall_clock_steps_neither_evict_nor_delay()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        using LogStore store = Open(dir, clock);
        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        a.Consume(); // gives t-1 to b
        Assert.That(b.Consume()!.TopicPartition, Is.EqualTo(P(1)));

        clock.StepWallClock(TimeSpan.FromHours(1)); // NTP jumps forward; a has been idle for no time at all
        clock.Advance(TimeSpan.FromSeconds(2)); // past b's once-a-second eviction check
        b.Consume();
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(1) }), "a forward step of the wall clock evicted nobody");
        a.Consume();

        clock.StepWallClock(TimeSpan.FromHours(-3)); // and back, to before the start
        clock.Advance(TimeSpan.FromSeconds(11)); // a idle for 11 s of real (monotonic) time
        b.Consume();
        Assert.That(b.Assignment, Is.EquivalentTo(new[] { P(0), P(1) }), "a backward step did not hold the eviction back");
    }
}
