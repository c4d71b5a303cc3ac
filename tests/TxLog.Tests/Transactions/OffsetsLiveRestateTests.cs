using Microsoft.Extensions.Logging;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Storage;
using TxLog.Tests.Diagnostics;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// <c>__consumer_offsets</c> grows by one record per plain offset commit; a running store rewrites it
/// (from its background loop) when history dominates, and loses nothing by it: not an acknowledged commit,
/// not a transaction's offsets that were still pending, not a deleted topic's tombstones.
/// </summary>
public class OffsetsLiveRestateTests
{
    private static readonly TopicPartition K = new("in", 0);

    private static LogStoreOptions SmallSegments(DurabilityMode mode, IFileSystem? fs = null)
    {
        LogStoreOptions options = Options(mode);
        options.SegmentBytes = 4096;
        options.PreallocateBytes = 0;
        if (fs is not null)
        {
            options.FileSystem = fs;
        }

        return options;
    }

    private static LogPartition OffsetsLog(LogStore store) => store.GetPartition(GroupCoordinator.TopicName, 0);

    private static async Task CommitAsync(LogStore store, string group, TopicPartition tp, long offset) =>
        await store.Groups.CommitAsync(group, [new TopicPartitionOffset(tp, offset)]);

    // History: `count` plain commits over ten keys of group "h" (values 0..count-1).
    private static async Task HistoryAsync(LogStore store, int count)
    {
        for (int i = 0; i < count; i++)
        {
            await CommitAsync(store, "h", new TopicPartition("x", i % 10), i);
        }
    }

    private static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(Tx.Timeout);
        while (!condition())
        {
            if (timeout.IsCancellationRequested)
            {
                return false;
            }

            await Task.Delay(5);
        }

        return true;
    }

    [Test]
    public async Task A_log_grown_past_twice_the_threshold_is_restated_without_waiting_for_the_timed_pass()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.None);
        options.RetentionCheckInterval = TimeSpan.FromHours(1); // the timed pass never comes in this test
        using LogStore store = LogStore.Open(dir.Path, options);
        store.Groups.LiveRestateSlack = 100;
        LogPartition offsets = OffsetsLog(store);

        // 10 keys: restatement threshold 2 * 10 + 100 = 120 records, wake threshold twice that.
        await HistoryAsync(store, 200);
        Assert.That(store.Groups.Restatements, Is.Zero, "below the wake threshold the timed pass decides");
        await HistoryAsync(store, 100);
        Assert.That(await EventuallyAsync(() => store.Groups.Restatements > 0), Is.True, "woken by the growth");
        Assert.That(offsets.LogEndOffset - offsets.LogStartOffset, Is.LessThan(300));
        for (int k = 0; k < 10; k++)
        {
            Assert.That(store.Groups.Committed("h", new TopicPartition("x", k)), Is.EqualTo(90 + k), "nothing lost by the pass (the second history wrote 0..99)");
        }
    }

    [Test]
    public async Task The_background_loop_keeps_the_offsets_log_bounded_while_plain_commits_go_on()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.None);
        options.RetentionCheckInterval = TimeSpan.FromMilliseconds(10); // a pass of the background loop
        const int Keys = 10;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.Groups.LiveRestateSlack = 100;
            LogPartition offsets = OffsetsLog(store);
            for (int round = 0; round < 10; round++)
            {
                int before = store.Groups.Restatements;
                for (int i = 0; i < 300; i++)
                {
                    await CommitAsync(store, "g", new TopicPartition("in", i % Keys), (round * 1000) + i);
                }

                Assert.That(await EventuallyAsync(() => store.Groups.Restatements > before), Is.True, $"round {round}: the loop restated the log");
                long history = offsets.LogEndOffset - offsets.LogStartOffset;
                Assert.That(history, Is.LessThanOrEqualTo((2 * Keys) + 100 + 300), $"round {round}: {history} records kept");
            }

            Assert.That(offsets.LogStartOffset, Is.GreaterThan(2000), "history was deleted while the store ran");
            Assert.That(store.Groups.RestateFailures, Is.Zero);
        }

        using LogStore reopened = LogStore.Open(dir.Path, options);
        for (int k = 0; k < Keys; k++)
        {
            Assert.That(reopened.Groups.Committed("g", new TopicPartition("in", k)), Is.EqualTo(9000 + 290 + k), $"key {k}: the last commit");
        }
    }

    [Test]
    public async Task A_failed_live_restatement_is_counted_and_the_loop_and_the_store_go_on()
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem
        {
            Targets = static path => path.Contains(GroupCoordinator.TopicName, StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal),
        };
        LogStoreOptions options = SmallSegments(DurabilityMode.None, fs);
        options.RetentionCheckInterval = TimeSpan.FromMilliseconds(10);
        var loggers = new ListLoggerFactory();
        options.LoggerFactory = loggers;
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        await HistoryAsync(store, 200);
        LogPartition offsets = OffsetsLog(store);
        long start = offsets.LogStartOffset;
        fs.FailSync(); // the restatement's first fsync (of the segment it rolls away from)
        store.Groups.LiveRestateSlack = 10;
        Assert.That(await EventuallyAsync(() => store.Groups.RestateFailures >= 2), Is.True, "the failure was counted, and the next pass tried again");
        Assert.That(offsets.LogStartOffset, Is.EqualTo(start), "nothing was deleted");
        Assert.That(loggers.WithId(2004), Is.Not.Empty, "the failure was logged (OffsetsRestateFailed)");
        await store.GetPartition("t", 0).AppendAsync(Msg("still writable"));
        Assert.DoesNotThrow(store.Dispose, "the store closes");

        using LogStore reopened = LogStore.Open(dir.Path, SmallSegments(DurabilityMode.None));
        Assert.That(reopened.Groups.Committed("h", new TopicPartition("x", 9)), Is.EqualTo(199));
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Offsets_pending_in_a_transaction_across_a_restatement_take_its_outcome_after_a_reopen(bool commit)
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit);
        var fresh = new TopicPartition("in", 1); // no offset before the transaction
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("out");
            await HistoryAsync(store, 200);
            await CommitAsync(store, "g", K, 5);
            await HistoryAsync(store, 100); // segments between the offset in effect and the pending one
            await using Producer p = await TransactionalAsync(store, "tx");
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("out", 0), Msg("v"));
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(K, 7), new TopicPartitionOffset(fresh, 3)], "g");
            await HistoryAsync(store, 100); // the pending records are not the last ones

            store.Groups.LiveRestateSlack = 5;
            long before = OffsetsLog(store).LogStartOffset;
            Assert.That(store.Groups.RestateIfGrown(), Is.True, "restated while the transaction was open");
            Assert.That(OffsetsLog(store).LogStartOffset, Is.GreaterThan(before), "history before the transaction was deleted");
            Assert.That(store.Groups.Committed("g", K), Is.EqualTo(5), "pending offsets are not in effect");

            if (commit)
            {
                await p.CommitTransactionAsync();
            }
            else
            {
                await p.AbortTransactionAsync();
            }

            Assert.That(store.Groups.Committed("g", K), Is.EqualTo(commit ? 7 : 5));
            Assert.That(store.Groups.Committed("g", fresh), Is.EqualTo(commit ? 3 : null));
            await store.FlushAsync();
        }

        using LogStore reopened = LogStore.Open(dir.Path, options);
        Assert.That(reopened.Groups.Committed("g", K), Is.EqualTo(commit ? 7 : 5), "after a reopen, the transaction's outcome");
        Assert.That(reopened.Groups.Committed("g", fresh), Is.EqualTo(commit ? 3 : null), "after a reopen, an offset only the transaction wrote");
        Assert.That(reopened.Groups.Committed("h", new TopicPartition("x", 9)), Is.EqualTo(99), "the history's offsets");
    }

    [Test]
    public async Task A_pass_that_an_open_transactions_old_key_keeps_from_deleting_gives_up_before_building_the_whole_state()
    {
        // K's offset in effect comes from the oldest record; an open transaction has a pending offset for
        // K, so that record must stay and nothing before it can go, however long the history. Each pass
        // (every FlushInterval in Periodic mode) used to build the whole state under the append lock and
        // only then give up.
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, SmallSegments(DurabilityMode.GroupCommit));
        store.CreateTopic("out");
        await CommitAsync(store, "g", K, 5);
        await HistoryAsync(store, 300);
        await using Producer p = await TransactionalAsync(store, "tx");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("out", 0), Msg("v"));
        await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(K, 7)], "g");
        await HistoryAsync(store, 300);
        store.Groups.LiveRestateSlack = 5;

        for (int pass = 0; pass < 3; pass++)
        {
            Assert.That(store.Groups.RestateIfGrown(), Is.False, "K's record keeps the whole log");
        }

        Assert.That(store.Groups.FullPlansBuilt, Is.Zero, "no pass built the whole state to find that out");

        await p.CommitTransactionAsync();
        Assert.That(store.Groups.RestateIfGrown(), Is.True, "once the transaction decided, the history can go");
        Assert.That(store.Groups.FullPlansBuilt, Is.EqualTo(1));
        Assert.That(store.Groups.Committed("g", K), Is.EqualTo(7));
    }

    [Test]
    public async Task A_plain_commit_newer_than_a_pending_transactional_offset_still_wins_after_a_restatement()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("out");
            await HistoryAsync(store, 200);
            await using Producer p = await TransactionalAsync(store, "tx");
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("out", 0), Msg("v"));
            await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(K, 7)], "g");
            await CommitAsync(store, "g", K, 9); // newer record than the transaction's
            await HistoryAsync(store, 100);
            store.Groups.LiveRestateSlack = 5;
            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            await p.CommitTransactionAsync();
            Assert.That(store.Groups.Committed("g", K), Is.EqualTo(9), "the newest record wins");
            await store.FlushAsync();
        }

        using LogStore reopened = LogStore.Open(dir.Path, options);
        Assert.That(reopened.Groups.Committed("g", K), Is.EqualTo(9), "the newest record wins after a reopen");
    }

    [Test]
    public async Task A_plain_commit_in_flight_during_a_restatement_survives_a_reopen()
    {
        using var dir = new TempDirectory();
        var fs = new BlockingSyncFileSystem();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit, fs);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            await HistoryAsync(store, 200);
            await CommitAsync(store, "g", K, 5);
            fs.BlockNextSync();
            Task inFlight = Task.Run(() => CommitAsync(store, "g", K, 9)); // appended; its fsync waits
            Assert.That(fs.WaitUntilBlocked(Tx.Timeout), Is.True, "the commit's fsync started");
            Assert.That(store.Groups.Committed("g", K), Is.EqualTo(5), "not acknowledged yet");

            store.Groups.LiveRestateSlack = 5;
            store.Groups.StepHook = step =>
            {
                if (step == "planned")
                {
                    fs.Release(); // the copies are decided while the commit is in flight
                }
            };
            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            await inFlight.WaitAsync(Tx.Timeout);
            Assert.That(store.Groups.Committed("g", K), Is.EqualTo(9), "acknowledged");
        }

        using LogStore reopened = LogStore.Open(dir.Path, SmallSegments(DurabilityMode.GroupCommit));
        Assert.That(reopened.Groups.Committed("g", K), Is.EqualTo(9), "an acknowledged commit survives the restatement and a reopen");
    }

    [Test]
    public async Task A_deleted_topics_offsets_stay_deleted_after_a_restatement_and_a_reopen()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit);
        var gone = new TopicPartition("gone", 0);
        var keep = new TopicPartition("keep", 0);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("gone");
            store.CreateTopic("keep");
            await CommitAsync(store, "g", gone, 4);
            await CommitAsync(store, "g", keep, 6);
            await HistoryAsync(store, 200);
            store.DeleteTopic("gone");
            await HistoryAsync(store, 100);
            store.Groups.LiveRestateSlack = 5;
            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            Assert.That(store.Groups.Committed("g", gone), Is.Null);
        }

        using (LogStore reopened = LogStore.Open(dir.Path, options))
        {
            Assert.That(reopened.Groups.Committed("g", gone), Is.Null, "the deleted topic's offsets did not come back");
            Assert.That(reopened.Groups.Committed("g", keep), Is.EqualTo(6));
            reopened.CreateTopic("gone");
        }

        using LogStore again = LogStore.Open(dir.Path, options);
        Assert.That(again.Groups.Committed("g", gone), Is.Null, "a topic created again under the name starts with none");
    }

    [Test]
    public async Task Tombstones_not_yet_durable_during_a_restatement_stay_effective_after_a_reopen()
    {
        using var dir = new TempDirectory();
        var fs = new BlockingSyncFileSystem();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit, fs);
        var gone = new TopicPartition("gone", 0);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("gone");
            await HistoryAsync(store, 200);
            await CommitAsync(store, "g", gone, 4);
            fs.BlockNextSync();
            Task delete = Task.Run(() => store.DeleteTopic("gone")); // tombstones appended; their fsync waits
            Assert.That(fs.WaitUntilBlocked(Tx.Timeout), Is.True, "the tombstones' fsync started");
            store.Groups.LiveRestateSlack = 5;
            store.Groups.StepHook = step =>
            {
                if (step == "planned")
                {
                    fs.Release();
                }
            };
            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            await delete.WaitAsync(Tx.Timeout);
            Assert.That(store.Groups.Committed("g", gone), Is.Null);
        }

        using LogStore reopened = LogStore.Open(dir.Path, SmallSegments(DurabilityMode.GroupCommit));
        Assert.That(reopened.Groups.Committed("g", gone), Is.Null, "the deleted topic's offsets did not come back");
        Assert.That(reopened.Groups.Committed("h", new TopicPartition("x", 9)), Is.EqualTo(199));
    }

    [Test]
    public async Task Concurrent_plain_and_transactional_commits_lose_nothing_and_show_no_aborted_offsets_across_restatements_and_a_reopen()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit);
        const int Writers = 3;
        var lastTransactional = new long[Writers];
        var lastPlain = new long[Writers];
        var problems = new System.Collections.Concurrent.ConcurrentQueue<string>();
        int restates = 0;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("out");
            store.Groups.LiveRestateSlack = 5;
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            var tasks = new List<Task>();
            for (int w = 0; w < Writers; w++)
            {
                int me = w;
                var txKey = new TopicPartition("tx", me);
                var plainKey = new TopicPartition("plain", me);
                tasks.Add(Task.Run(async () =>
                {
                    await using Producer p = await TransactionalAsync(store, "w" + me);
                    for (int i = 0; !stop.IsCancellationRequested; i++)
                    {
                        p.BeginTransaction();
                        await p.ProduceAsync(new TopicPartition("out", 0), Msg($"w{me}-{i}"));
                        await p.SendOffsetsToTransactionAsync([new TopicPartitionOffset(txKey, (3 * i) + (i % 3 == 2 ? 0 : 1))], "g");
                        if (i % 3 == 2)
                        {
                            await p.AbortTransactionAsync(); // aborted offsets are multiples of 3
                        }
                        else
                        {
                            await p.CommitTransactionAsync();
                            lastTransactional[me] = (3 * i) + 1;
                        }

                        if (store.Groups.Committed("g", txKey) is long seen && seen % 3 == 0)
                        {
                            problems.Enqueue($"writer {me}: aborted offset {seen} in effect");
                        }
                    }
                }));
                tasks.Add(Task.Run(async () =>
                {
                    for (int i = 1; !stop.IsCancellationRequested; i++)
                    {
                        await store.Groups.CommitAsync("g", [new TopicPartitionOffset(plainKey, i)]);
                        lastPlain[me] = i;
                    }
                }));
            }

            tasks.Add(Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (store.Groups.RestateIfGrown())
                    {
                        Interlocked.Increment(ref restates);
                    }

                    await Task.Delay(1);
                }
            }));
            await Task.WhenAll(tasks);

            for (int w = 0; w < Writers; w++)
            {
                Assert.That(store.Groups.Committed("g", new TopicPartition("tx", w)), Is.EqualTo(lastTransactional[w]), $"writer {w}: its last commit, live");
                Assert.That(store.Groups.Committed("g", new TopicPartition("plain", w)), Is.EqualTo(lastPlain[w]), $"committer {w}: its last commit, live");
            }
        }

        Assert.That(problems, Is.Empty);
        Assert.That(restates, Is.GreaterThan(2), "restated while the writers ran");
        using LogStore reopened = LogStore.Open(dir.Path, options);
        for (int w = 0; w < Writers; w++)
        {
            Assert.That(reopened.Groups.Committed("g", new TopicPartition("tx", w)), Is.EqualTo(lastTransactional[w]), $"writer {w}: its last commit after a reopen");
            Assert.That(reopened.Groups.Committed("g", new TopicPartition("plain", w)), Is.EqualTo(lastPlain[w]), $"committer {w}: its last commit after a reopen");
        }
    }

    // A committed transaction still held (another transaction is open below it on "out") when the
    // restatement copies its offset: invisible until the release, visible after it and after a reopen.
    [Test]
    public async Task A_held_transaction_across_a_restatement_becomes_visible_at_its_release_and_after_a_reopen()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = SmallSegments(DurabilityMode.GroupCommit);
        var k = new TopicPartition("in", 0);
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("out");
            for (int i = 0; i < 300; i++)
            {
                await store.Groups.CommitAsync("h", [new TopicPartitionOffset(new TopicPartition("x", i % 10), i)]);
            }

            await store.Groups.CommitAsync("g", [new TopicPartitionOffset(k, 5)]);
            await using Producer a = await TransactionalAsync(store, "a");
            await using Producer b = await TransactionalAsync(store, "b");
            a.BeginTransaction();
            await a.ProduceAsync(new TopicPartition("out", 0), Msg("a"));
            b.BeginTransaction();
            await b.ProduceAsync(new TopicPartition("out", 0), Msg("b"));
            await b.SendOffsetsToTransactionAsync([new TopicPartitionOffset(k, 7)], "g");
            await b.CommitTransactionAsync(); // held: a is open below it on "out"
            Assert.That(store.Groups.Committed("g", k), Is.EqualTo(5), "held");
            for (int i = 0; i < 300; i++)
            {
                await store.Groups.CommitAsync("h", [new TopicPartitionOffset(new TopicPartition("x", i % 10), 1000 + i)]);
            }

            store.Groups.LiveRestateSlack = 5;
            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            Assert.That(store.Groups.Committed("g", k), Is.EqualTo(5), "still held after the restatement");
            await a.AbortTransactionAsync();
            Assert.That(await EventuallyAsync(() => store.Groups.Committed("g", k) == 7), Is.True, "released");
            Assert.That(store.Groups.RestateIfGrown(), Is.False);
            for (int i = 0; i < 300; i++)
            {
                await store.Groups.CommitAsync("h", [new TopicPartitionOffset(new TopicPartition("x", i % 10), 2000 + i)]);
            }

            Assert.That(store.Groups.RestateIfGrown(), Is.True);
            Assert.That(store.Groups.Committed("g", k), Is.EqualTo(7));
        }

        using LogStore reopened = LogStore.Open(dir.Path, options);
        Assert.That(reopened.Groups.Committed("g", k), Is.EqualTo(7));
    }

    // A logger whose event 2004 throws (a logging provider failing on the same full disk, say): the
    // background loop must live on, or Periodic mode stops fsyncing and nothing restates any more.
    [Test]
    public async Task A_logger_that_throws_on_a_failed_restatement_does_not_stop_the_background_loop()
    {
        using var dir = new TempDirectory();
        var fs = new FaultyFileSystem
        {
            Targets = static path => path.Contains(GroupCoordinator.TopicName, StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal),
        };
        LogStoreOptions options = SmallSegments(DurabilityMode.Periodic, fs);
        options.FlushInterval = TimeSpan.FromMilliseconds(10); // a pass of the background loop
        options.LoggerFactory = new ThrowingLoggerFactory(2004);
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        for (int i = 0; i < 200; i++)
        {
            await store.Groups.CommitAsync("h", [new TopicPartitionOffset(new TopicPartition("x", i % 10), i)]);
        }

        fs.FailSync(); // the restatement's first fsync
        store.Groups.LiveRestateSlack = 10;
        Assert.That(await EventuallyAsync(() => store.Groups.RestateFailures >= 1), Is.True, "the restatement failed");
        LogPartition t = store.GetPartition("t", 0);
        AppendResult appended = await t.AppendAsync(Msg("after"));
        Assert.That(await EventuallyAsync(() => t.Log.DurableOffset > appended.LastOffset), Is.True, "the loop still fsyncs (Periodic mode)");
        Assert.That(await EventuallyAsync(() => store.Groups.RestateFailures >= 2 || store.Groups.Restatements > 0), Is.True, "the loop still tries to restate");
        store.Dispose();
    }

    private sealed class ThrowingLoggerFactory(int eventId) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new Logger(eventId);

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public void Dispose()
        {
        }

        private sealed class Logger(int eventId) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId id, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (id.Id == eventId)
                {
                    throw new InvalidOperationException("the logging provider failed");
                }
            }
        }
    }

    /// <summary>Blocks the next fsync of a <c>__consumer_offsets</c> segment until released (then it succeeds).</summary>
    private sealed class BlockingSyncFileSystem : DelegatingFileSystem
    {
        private readonly ManualResetEventSlim _blocked = new(false);
        private readonly ManualResetEventSlim _released = new(true);
        private int _armed;

        public void BlockNextSync()
        {
            _released.Reset();
            Volatile.Write(ref _armed, 1);
        }

        public bool WaitUntilBlocked(TimeSpan timeout) => _blocked.Wait(timeout);

        public void Release() => _released.Set();

        protected override IStorageFile WrapFile(string path, IStorageFile file) =>
            path.Contains(GroupCoordinator.TopicName, StringComparison.Ordinal) && path.EndsWith(".log", StringComparison.Ordinal) ? new File(this, file) : file;

        private sealed class File(BlockingSyncFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
        {
            public override void Sync()
            {
                if (Interlocked.Exchange(ref owner._armed, 0) == 1)
                {
                    owner._blocked.Set();
                    owner._released.Wait(Tx.Timeout);
                }

                base.Sync();
            }
        }
    }
}
