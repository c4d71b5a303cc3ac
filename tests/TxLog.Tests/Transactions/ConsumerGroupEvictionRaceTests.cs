using System.Diagnostics;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Tests.Faults;
using TxLog.Tests.Diagnostics;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>Races of MaxPollInterval eviction and topic changes with a member's own poll.</summary>
public sealed class ConsumerGroupEvictionRaceTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static TopicPartition P(int partition) => new("t", partition);

    private static ConsumerOptions Member() => new() { GroupId = "g", MaxPollInterval = TimeSpan.FromSeconds(10) };

    /// <summary>
    /// A manual clock (wall and monotonic time move together) whose monotonic timestamp can hold the first
    /// caller whose stack names a method.
    /// </summary>
    private sealed class GatedClock(DateTimeOffset start) : TimeProvider
    {
        private long _elapsed;
        private string? _gateOn;

        public ManualResetEventSlim Blocked { get; } = new();

        public ManualResetEventSlim Released { get; } = new();

        public override DateTimeOffset GetUtcNow() => start + TimeSpan.FromTicks(Interlocked.Read(ref _elapsed));

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp()
        {
            string? gate = Volatile.Read(ref _gateOn);
            if (gate is not null && new StackTrace().ToString().Contains(gate, StringComparison.Ordinal)
                && Interlocked.CompareExchange(ref _gateOn, null, gate) == gate)
            {
                Blocked.Set();
                Released.Wait();
            }

            return Interlocked.Read(ref _elapsed);
        }

        public void Advance(TimeSpan by) => Interlocked.Add(ref _elapsed, by.Ticks);

        public void HoldNext(string method) => Volatile.Write(ref _gateOn, method);
    }

    [Test]
    public async Task A_member_woken_from_its_wait_is_not_evicted_before_its_poll_records_the_time()
    {
        using var dir = new TempDirectory();
        var clock = new GatedClock(Start);
        var logs = new ListLoggerFactory();
        LogStoreOptions options = Options(DurabilityMode.None, clock);
        options.LoggerFactory = logs;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        for (int p = 0; p < 2; p++)
        {
            for (int i = 0; i < 3; i++)
            {
                store.GetPartition("t", p).Append(Msg($"{p}-{i}"));
            }
        }

        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loop = a.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        for (int i = 0; i < 3; i++)
        {
            Assert.That(await loop.MoveNextAsync(), Is.True);
        }

        ValueTask<bool> waiting = loop.MoveNextAsync(); // a waits for data: polling
        while (b.Consume() is not null)
        {
        }

        clock.Advance(TimeSpan.FromHours(1));
        Assert.That(b.Consume(), Is.Null);
        Assert.That(b.Assignment, Is.EqualTo(new[] { P(1) }), "a waits: not idle");

        // New data wakes a. Hold a's poll at its clock read (after its wait ended), and let b poll then.
        clock.HoldNext("PollGroup");
        store.GetPartition("t", 0).Append(Msg("0-late"));
        Assert.That(clock.Blocked.Wait(Tx.Timeout), Is.True, "a woke and polls");
        clock.Advance(TimeSpan.FromSeconds(2)); // past b's once-a-second eviction check
        b.Consume();
        int evictions = logs.WithId(7002).Count();
        clock.Released.Set();

        Assert.That(evictions, Is.Zero, "a was waiting an instant ago and is polling now: never idle");
        Assert.That(await waiting, Is.True);
        Assert.That(Text(loop.Current.Value), Is.EqualTo("0-late"));
    }

    /// <summary>Blocks DeleteDirectory (inside DeleteTopic, after the topic left the topic list) while armed.</summary>
    private sealed class BlockingDeleteFileSystem() : DelegatingFileSystem(null)
    {
        private int _armed;

        public ManualResetEventSlim Blocked { get; } = new();

        public ManualResetEventSlim Released { get; } = new();

        public void Arm() => Volatile.Write(ref _armed, 1);

        public override void DeleteDirectory(string path)
        {
            if (Interlocked.Exchange(ref _armed, 0) == 1)
            {
                Blocked.Set();
                Released.Wait();
            }

            base.DeleteDirectory(path);
        }
    }

    [Test]
    public void A_member_taking_a_partition_while_its_topic_is_deleted_does_not_throw_TopicNotFound()
    {
        using var dir = new TempDirectory();
        var fs = new BlockingDeleteFileSystem();
        LogStoreOptions options = Options();
        options.FileSystem = fs;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        a.Consume(); // a lets t-1 go; b takes it at its next poll

        var errors = new List<Exception>();
        fs.Arm();
        Thread delete = InterposedFileSystem.StartUntilDoneOrBlocked(() => store.DeleteTopic("t"), errors);
        Assert.That(fs.Blocked.Wait(Tx.Timeout), Is.True);

        // b polls while the topic is out of the topic list but the group has not been told yet.
        Thread poll = InterposedFileSystem.StartUntilDoneOrBlocked(() => b.Consume(), errors);
        fs.Released.Set();
        Assert.That(delete.Join(Tx.Timeout) && poll.Join(Tx.Timeout), Is.True);
        Assert.That(errors, Is.Empty, "a subscribed member drops a deleted topic's partitions without TopicNotFoundException");
        Assert.That(b.Consume(), Is.Null);
        Assert.That(b.Assignment, Is.Empty);
    }

    /// <summary>A logger whose event 7002 (a member evicted) throws.</summary>
    private sealed class ThrowingEvictionLoggerFactory : Microsoft.Extensions.Logging.ILoggerFactory
    {
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger();

        public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider) => throw new NotSupportedException();

        public void Dispose()
        {
        }

        private sealed class Logger : Microsoft.Extensions.Logging.ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

            public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId id, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (id.Id == 7002)
                {
                    throw new InvalidOperationException("the logging provider failed");
                }
            }
        }
    }

    [Test]
    public void A_logger_that_throws_on_an_eviction_does_not_fail_the_poll_that_evicted()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        LogStoreOptions options = Options(DurabilityMode.None, clock);
        options.LoggerFactory = new ThrowingEvictionLoggerFactory();
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        store.GetPartition("t", 0).Append(Msg("0-0"));
        using Consumer a = store.CreateConsumer(Member());
        using Consumer b = store.CreateConsumer(Member());
        a.Subscribe("t");
        b.Subscribe("t");
        a.Consume();
        b.Consume();
        clock.Advance(TimeSpan.FromSeconds(11)); // a stops polling
        ConsumeResult? taken = null;
        Assert.DoesNotThrow(() => taken = b.Consume(), "b's poll evicted a; the log of it must not fail b's poll");
        Assert.That(taken?.TopicPartition, Is.EqualTo(P(0)));
    }

    [Test]
    public async Task A_logger_that_throws_on_an_eviction_does_not_leave_another_groups_members_asleep()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start, manualTimestamp: true);
        LogStoreOptions options = Options(DurabilityMode.None, clock);
        options.LoggerFactory = new ThrowingEvictionLoggerFactory();
        options.RetentionCheckInterval = TimeSpan.FromMilliseconds(20); // a background pass
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 2);
        store.GetPartition("t", 0).Append(Msg("0-0"));
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        var waits = new List<(Consumer Waiter, IAsyncEnumerator<ConsumeResult> Loop, ValueTask<bool> Next)>();
        var dropped = new List<Consumer>();
        foreach (string group in new[] { "g1", "g2" })
        {
            Consumer d = store.CreateConsumer(new ConsumerOptions { GroupId = group, MaxPollInterval = TimeSpan.FromSeconds(10) });
            d.Subscribe("t");
            Consumer w = store.CreateConsumer(new ConsumerOptions { GroupId = group, MaxPollInterval = TimeSpan.FromSeconds(10) });
            w.Subscribe("t");
            d.Consume(); // gives t-1 to w, then is never used again
            dropped.Add(d);
            IAsyncEnumerator<ConsumeResult> loop = w.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
            waits.Add((w, loop, loop.MoveNextAsync())); // t-1 is empty: waits
        }

        clock.Advance(TimeSpan.FromSeconds(11));
        foreach ((Consumer w, IAsyncEnumerator<ConsumeResult> loop, ValueTask<bool> next) in waits)
        {
            bool woke;
            try
            {
                woke = await next;
            }
            catch (OperationCanceledException)
            {
                woke = false;
            }

            Assert.That(woke, Is.True, "a background pass evicted both dropped members: every group's waiting member takes t-0");
            Assert.That(loop.Current.TopicPartition, Is.EqualTo(P(0)));
        }

        foreach ((Consumer w, IAsyncEnumerator<ConsumeResult> loop, _) in waits)
        {
            await loop.DisposeAsync();
            w.Dispose();
        }
    }
}
