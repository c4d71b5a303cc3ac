using System.Diagnostics;
using Microsoft.Extensions.Logging;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Diagnostics;

/// <summary>Logging (EventIds + structured fields), metrics (MeterListener) and spans (ActivityListener).</summary>
[NonParallelizable] // ActivityListener and MeterListener are process-wide; each test filters by its store directory anyway
public sealed class ObservabilityTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [Test]
    public void Appends_count_records_and_bytes_per_partition_and_fsyncs_are_counted_and_timed()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t", 2);
        LogPartition p0 = store.GetPartition("t", 0);
        LogPartition p1 = store.GetPartition("t", 1);
        long before0 = p0.SizeInBytes;
        p0.Append([Msg("a"), Msg("b"), Msg("c")]);
        p0.Append(Msg("d"));
        p1.Append(Msg("e"));
        p0.FlushAsync().AsTask().Wait();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("txlog.records.appended", "txlog.topic", "t"), Is.EqualTo(5));
            Assert.That(metrics.Of("txlog.records.appended").Where(m => Equals(m.Tags["txlog.partition"], 0)).Sum(m => m.Value), Is.EqualTo(4));
            Assert.That(metrics.Of("txlog.bytes.appended").Where(m => Equals(m.Tags["txlog.partition"], 0)).Sum(m => m.Value), Is.EqualTo(p0.SizeInBytes - before0));
            Assert.That(metrics.Of("txlog.fsync.count").Where(m => Equals(m.Tags["txlog.topic"], "t") && Equals(m.Tags["txlog.partition"], 0)).Sum(m => m.Value), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.fsync.duration").Count(m => Equals(m.Tags["txlog.topic"], "t")), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.group_commit.batch_size").Select(m => m.Value), Is.EqualTo(new[] { 1.0 }), "one flush, led by its only waiter");
        });
    }

    [Test]
    public void Nothing_is_measured_for_a_store_nobody_listens_to()
    {
        using var dir = new TempDirectory();
        using var other = new TempDirectory();
        using var metrics = new MetricsRecorder(other.Path); // listens to a different store
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("a"));
        Assert.That(store.Telemetry.RecordsAppended.Enabled, Is.False);
        Assert.That(metrics.Of("txlog.records.appended"), Is.Empty);
    }

    [Test]
    public async Task Transactions_are_counted_timed_and_traced_by_outcome()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        using var spans = new SpanRecorder(dir.Path);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t", 2);
        await using Producer producer = await TransactionalAsync(store, "tx-1");

        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("t", 0), Msg("a"));
        await producer.ProduceAsync(new TopicPartition("t", 1), Msg("b"));
        await producer.CommitTransactionAsync();
        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("t", 0), Msg("c"));
        await producer.AbortTransactionAsync();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("txlog.transactions.committed", "txlog.transaction.kind", "log"), Is.EqualTo(1));
            Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "log"), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.commit.duration"), Has.Count.EqualTo(1));
            Assert.That(metrics.Of("txlog.commit.duration")[0].Value, Is.GreaterThan(0));
            List<Activity> commits = spans.Named("txlog.commit");
            Assert.That(commits, Has.Count.EqualTo(1));
            Assert.That(commits[0].GetTagItem("txlog.transactional_id"), Is.EqualTo("tx-1"));
            Assert.That(commits[0].GetTagItem("txlog.partitions"), Is.EqualTo(2));
            Assert.That(commits[0].Status, Is.EqualTo(ActivityStatusCode.Ok));
            List<Activity> aborts = spans.Named("txlog.abort");
            Assert.That(aborts, Has.Count.EqualTo(1));
            Assert.That(aborts[0].GetTagItem("txlog.partitions"), Is.EqualTo(1));
        });
    }

    [Test]
    public async Task A_failed_commit_is_an_error_span_and_not_counted_as_committed()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        using var spans = new SpanRecorder(dir.Path);
        var loggers = new ListLoggerFactory();
        LogStoreOptions options = Options();
        options.LoggerFactory = loggers;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        await using Producer zombie = await TransactionalAsync(store, "tx-z");
        zombie.BeginTransaction();
        await zombie.ProduceAsync(T0, Msg("a"));
        await using Producer successor = await TransactionalAsync(store, "tx-z"); // fences the zombie

        Assert.ThrowsAsync<ProducerFencedException>(async () => await zombie.CommitTransactionAsync());
        Assert.ThrowsAsync<ProducerFencedException>(async () => await store.Coordinator.EndTransactionAsync("tx-z", zombie.ProducerId, zombie.Epoch, commit: true));
        Assert.Multiple(() =>
        {
            Assert.That(metrics.Of("txlog.transactions.committed"), Is.Empty);
            Assert.That(spans.Named("txlog.commit").Select(a => a.Status), Is.EqualTo(new[] { ActivityStatusCode.Error, ActivityStatusCode.Error }));
            Assert.That(loggers.WithId(2002), Has.Count.EqualTo(1), "a retrying zombie is reported once");
            Logged fenced = loggers.WithId(2002).Single();
            Assert.That(fenced.Level, Is.EqualTo(LogLevel.Warning));
            Assert.That(fenced.Fields["ProducerId"], Is.EqualTo(zombie.ProducerId));
            Assert.That(fenced.Fields["Epoch"], Is.EqualTo(zombie.Epoch));
            Assert.That(fenced.Fields["CurrentEpoch"], Is.EqualTo(successor.Epoch));
        });
    }

    [Test]
    public async Task A_timed_out_transaction_is_logged_counted_and_open_transactions_and_lso_lag_are_gauged()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch.AddDays(20000), manualTimestamp: true);
        var loggers = new ListLoggerFactory();
        using var metrics = new MetricsRecorder(dir.Path);
        LogStoreOptions options = Options(DurabilityMode.None, clock);
        options.LoggerFactory = loggers;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append([Msg("x"), Msg("y")]);
        await using Producer producer = await TransactionalAsync(store, "slow", TimeSpan.FromSeconds(10));
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, [Msg("a"), Msg("b"), Msg("c")]);

        Assert.That(metrics.Observe("txlog.transactions.open").Single().Value, Is.EqualTo(1));
        Measured lag = metrics.Observe("txlog.partition.lso_lag").Single(m => Equals(m.Tags["txlog.topic"], "t"));
        Assert.That(lag.Value, Is.EqualTo(3), "HW 5, LSO 2 (the open transaction starts at offset 2)");
        Measured hw = metrics.Observe("txlog.partition.high_watermark").Single(m => Equals(m.Tags["txlog.topic"], "t"));
        Assert.That(hw.Value, Is.EqualTo(p.HighWatermark));

        clock.Advance(TimeSpan.FromSeconds(11));
        Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.EqualTo(1));

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("txlog.transactions.timed_out"), Is.EqualTo(1));
            Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "log"), Is.EqualTo(1));
            Logged timedOut = loggers.WithId(2001).Single();
            Assert.That(timedOut.Fields["TransactionalId"], Is.EqualTo("slow"));
            Assert.That(timedOut.Fields["AgeMs"], Is.EqualTo(11_000L));
            Assert.That(timedOut.Fields["TimeoutMs"], Is.EqualTo(10_000L));
            Assert.That(metrics.Observe("txlog.transactions.open").Single().Value, Is.EqualTo(0));
            Assert.That(metrics.Observe("txlog.partition.lso_lag").Single(m => Equals(m.Tags["txlog.topic"], "t")).Value, Is.EqualTo(0));
        });
    }

    [Test]
    public async Task Consumer_group_lag_is_reported_per_isolation_level()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append([Msg("0"), Msg("1"), Msg("2"), Msg("3")]);
        using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
        {
            consumer.Assign(T0);
            consumer.Consume();
            await consumer.Commit(); // committed offset 1
        }

        await using Producer producer = await TransactionalAsync(store, "open");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, [Msg("a"), Msg("b")]); // offsets 4, 5: open

        List<Measured> lag = metrics.Observe("txlog.consumer_group.lag").Where(m => Equals(m.Tags["txlog.group"], "g")).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(lag.Single(m => Equals(m.Tags["txlog.isolation"], "read_uncommitted")).Value, Is.EqualTo(5), "HW 6 - 1");
            Assert.That(lag.Single(m => Equals(m.Tags["txlog.isolation"], "read_committed")).Value, Is.EqualTo(3), "LSO 4 - 1");
        });
    }

    [Test]
    public void Recovery_logs_the_truncated_tail_with_file_position_and_bytes_and_traces_the_open()
    {
        using var dir = new TempDirectory();
        string segment;
        long validLength;
        using (LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit)))
        {
            store.CreateTopic("t");
            store.GetPartition("t", 0).Append([Msg("a"), Msg("b")]);
        }

        segment = Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.log").Single();
        validLength = new FileInfo(segment).Length;
        File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)); // as after a crash
        using (FileStream f = new(segment, FileMode.Append))
        {
            f.Write(new byte[] { 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 80, 1 }); // a batch header cut short
        }

        var loggers = new ListLoggerFactory();
        using var metrics = new MetricsRecorder(dir.Path);
        using var spans = new SpanRecorder(dir.Path);
        LogStoreOptions options = Options();
        options.LoggerFactory = loggers;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            Logged torn = loggers.WithId(1001).Single();
            Assert.Multiple(() =>
            {
                Assert.That(torn.Level, Is.EqualTo(LogLevel.Warning));
                Assert.That(torn.Category, Is.EqualTo("TxLog"));
                Assert.That(torn.Fields["File"], Is.EqualTo(segment));
                Assert.That(torn.Fields["Position"], Is.EqualTo(validLength));
                Assert.That(torn.Fields["Bytes"], Is.EqualTo(13L));
                Logged opened = loggers.WithId(1004).Single();
                Assert.That(opened.Fields["Clean"], Is.EqualTo(false));
                Assert.That(opened.Fields["TruncatedBytes"], Is.EqualTo(13L));
                Assert.That(metrics.Of("txlog.recovery.duration"), Has.Count.EqualTo(1));
                Activity recovery = spans.Named("txlog.recovery").Single();
                Assert.That(recovery.GetTagItem("txlog.recovery.truncated_bytes"), Is.EqualTo(13L));
                Assert.That(recovery.GetTagItem("txlog.recovery.clean_shutdown"), Is.EqualTo(false));
            });
        }
    }

    [Test]
    public void A_lock_conflict_is_logged_before_the_typed_exception()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        using LogStore first = LogStore.Open(dir.Path, Options());
        LogStoreOptions options = Options();
        options.LoggerFactory = loggers;
        Assert.Throws<LogDirectoryLockedException>(() => LogStore.Open(dir.Path, options));
        Logged locked = loggers.WithId(5001).Single();
        Assert.That(locked.Fields["Directory"], Is.EqualTo(Path.GetFullPath(dir.Path)));
        Assert.That(locked.Level, Is.EqualTo(LogLevel.Error));
    }

    [Test]
    public void An_fsync_slower_than_the_threshold_is_logged_with_its_file()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.LoggerFactory = loggers;
        options.SlowFsyncThreshold = TimeSpan.FromTicks(1); // every fsync is "slow"
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("a"));
        store.GetPartition("t", 0).FlushAsync().AsTask().Wait();
        Logged slow = loggers.WithId(4001).First(e => ((string)e.Fields["File"]!).Contains($"{Path.DirectorySeparatorChar}t-0{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
        Assert.That((double)slow.Fields["DurationMs"]!, Is.GreaterThan(0));
    }

    [Test]
    public void A_normal_fsync_is_not_logged_as_slow()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.LoggerFactory = loggers;
        options.SlowFsyncThreshold = TimeSpan.FromMinutes(10);
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("a"));
        store.GetPartition("t", 0).FlushAsync().AsTask().Wait();
        Assert.That(loggers.WithId(4001), Is.Empty);
    }

    [Test]
    public async Task Map_commits_rollbacks_and_checkpoints_are_measured_logged_and_traced()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        using var metrics = new MetricsRecorder(dir.Path);
        using var spans = new SpanRecorder(dir.Path);
        LogStoreOptions options = Options();
        options.LoggerFactory = loggers;
        using LogStore store = LogStore.Open(dir.Path, options);
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        MvccTransaction tx = engine.BeginTransaction();
        map.Put(tx, 1, 10);
        await tx.CommitAsync();
        MvccTransaction rolledBack = engine.BeginTransaction();
        map.Put(rolledBack, 2, 20);
        rolledBack.Rollback();
        long ts = await engine.CheckpointAsync();

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("txlog.transactions.committed", "txlog.transaction.kind", "map"), Is.EqualTo(1));
            Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "map"), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.commit.duration").Count(m => Equals(m.Tags["txlog.transaction.kind"], "map")), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.checkpoint.duration"), Has.Count.EqualTo(1));
            Logged checkpoint = loggers.WithId(3001).Single();
            Assert.That(checkpoint.Fields["Timestamp"], Is.EqualTo(ts));
            Activity span = spans.Named("txlog.checkpoint").Single();
            Assert.That(span.GetTagItem("txlog.checkpoint.timestamp"), Is.EqualTo(ts));
            Assert.That(span.GetTagItem("txlog.checkpoint.entries"), Is.EqualTo(1L), "key 1 committed, key 2 rolled back");
            Assert.That(checkpoint.Fields["Entries"], Is.EqualTo(1L));
            string file = Directory.GetFiles(dir.Path, "*.ckpt", SearchOption.AllDirectories).Single();
            Assert.That(span.GetTagItem("txlog.checkpoint.bytes"), Is.EqualTo(new FileInfo(file).Length));
            Assert.That(span.Status, Is.EqualTo(ActivityStatusCode.Ok));
        });
    }

    [Test]
    public async Task A_unified_commit_is_counted_once_as_unified()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        (LogStore store, TransactionEngine engine, TransactionalMap<int, int> map) = OpenWithMaps(dir.Path);
        using LogStore owned = store;
        await using Producer producer = await TransactionalAsync(store, "u");
        await using (StoreTransaction tx = store.BeginTransaction(producer))
        {
            map.Put(tx.Maps, 1, 1);
            await tx.Producer.ProduceAsync(T0, Msg("a"));
            await tx.CommitAsync();
        }

        Assert.Multiple(() =>
        {
            Assert.That(metrics.Sum("txlog.transactions.committed"), Is.EqualTo(1));
            Assert.That(metrics.Sum("txlog.transactions.committed", "txlog.transaction.kind", "unified"), Is.EqualTo(1));
            Assert.That(metrics.Of("txlog.commit.duration").Single().Tags["txlog.transaction.kind"], Is.EqualTo("unified"));
        });
    }

    [Test]
    public async Task An_administrative_abort_is_logged_and_counted()
    {
        using var dir = new TempDirectory();
        var loggers = new ListLoggerFactory();
        using var metrics = new MetricsRecorder(dir.Path);
        LogStoreOptions options = Options();
        options.LoggerFactory = loggers;
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        await using Producer producer = await TransactionalAsync(store, "hanging");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("a"));

        Assert.That(await store.AbortTransactionAsync("hanging"), Is.True);
        Logged entry = loggers.WithId(2003).Single();
        Assert.Multiple(() =>
        {
            Assert.That(entry.Fields["TransactionalId"], Is.EqualTo("hanging"));
            Assert.That(entry.Fields["ProducerId"], Is.EqualTo(producer.ProducerId));
            Assert.That(entry.Fields["Epoch"], Is.EqualTo(producer.Epoch), "the epoch of the aborted transaction (the abort then bumps it)");
            Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "log"), Is.EqualTo(1));
        });
    }

    [Test]
    public void A_listener_that_enables_only_the_bytes_counter_gets_bytes()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        long bytes = 0;
        using System.Diagnostics.Metrics.MeterListener listener = ListenToLongs(store, "txlog.bytes.appended", (_, value, _, _) => Interlocked.Add(ref bytes, value));
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        long before = p.SizeInBytes;
        p.Append(Msg("abc"));
        Assert.That(store.Telemetry.RecordsAppended.Enabled, Is.False);
        Assert.That(bytes, Is.EqualTo(p.SizeInBytes - before));
    }

    [Test]
    public void A_listener_that_throws_does_not_fail_an_append()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        using System.Diagnostics.Metrics.MeterListener listener = ListenToLongs(store, null, (_, _, _, _) => throw new InvalidOperationException("listener bug"));
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        AppendResult appended = p.Append(Msg("a"));
        Assert.That(appended.BaseOffset, Is.Zero);
        Assert.That(p.LogEndOffset, Is.EqualTo(1), "written once, reported as success");
    }

    [Test]
    public void Gauges_report_nothing_and_do_not_throw_once_the_store_is_closed()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        Assert.That(metrics.Observe("txlog.partition.high_watermark"), Is.Not.Empty);
        // Keep the callbacks reachable after close: the meter is disposed with the store, so call them directly.
        store.Dispose();
        Assert.That(store.ObserveGaugesForTests(), Is.EqualTo((0, 0, 0, 0)));
    }

    [Test]
    public void A_read_only_map_transaction_is_neither_a_commit_nor_an_abort()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        using LogStore store = LogStore.Open(dir.Path, Options());
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        TransactionalMap<int, int> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int32);
        using (MvccTransaction reader = engine.BeginTransaction())
        {
            _ = map.Get(reader, 1);
        }

        _ = store.CaptureSnapshot().ToString(); // its own read-only map transaction
        Assert.That(metrics.Of("txlog.transactions.aborted"), Is.Empty);
        Assert.That(metrics.Of("txlog.transactions.committed"), Is.Empty);
    }

    [Test]
    public async Task A_unified_abort_and_a_failed_unified_commit_are_each_counted_once_as_unified()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        (LogStore store, TransactionEngine engine, TransactionalMap<int, int> map) = OpenWithMaps(dir.Path);
        using LogStore owned = store;
        await using Producer producer = await TransactionalAsync(store, "u");
        await using (StoreTransaction tx = store.BeginTransaction(producer))
        {
            map.Put(tx.Maps, 1, 1);
            await tx.Producer.ProduceAsync(T0, Msg("a"));
            await tx.AbortAsync();
        }

        Assert.That(metrics.Sum("txlog.transactions.aborted"), Is.EqualTo(1));
        Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "unified"), Is.EqualTo(1));

        await using (StoreTransaction tx = store.BeginTransaction(producer, TransactionIsolation.Serializable))
        {
            _ = map.Get(tx.Maps, 2); // read, then another transaction changes it: Serializable validation fails
            map.Put(tx.Maps, 3, 3);
            MvccTransaction other = engine.BeginTransaction();
            map.Put(other, 2, 20);
            await other.CommitAsync();
            Assert.ThrowsAsync(Is.InstanceOf<Exception>(), () => tx.CommitAsync());
        }

        Assert.That(metrics.Sum("txlog.transactions.aborted", "txlog.transaction.kind", "unified"), Is.EqualTo(2));
        Assert.That(metrics.Sum("txlog.transactions.aborted"), Is.EqualTo(2), "not also as map or log");
        Assert.That(metrics.Sum("txlog.transactions.committed", "txlog.transaction.kind", "map"), Is.EqualTo(1), "the other transaction");
    }

    [Test]
    public async Task An_administratively_aborted_unified_transaction_is_counted_once()
    {
        using var dir = new TempDirectory();
        using var metrics = new MetricsRecorder(dir.Path);
        (LogStore store, TransactionEngine engine, TransactionalMap<int, int> map) = OpenWithMaps(dir.Path);
        using LogStore owned = store;
        await using Producer producer = await TransactionalAsync(store, "u");
        await using (StoreTransaction tx = store.BeginTransaction(producer))
        {
            map.Put(tx.Maps, 1, 1);
            await tx.Producer.ProduceAsync(T0, Msg("a"));
            Assert.That(await store.AbortTransactionAsync("u"), Is.True);
            Assert.ThrowsAsync(Is.InstanceOf<Exception>(), () => tx.CommitAsync());
        }

        Assert.That(metrics.Sum("txlog.transactions.aborted"), Is.EqualTo(1), "one transaction, one abort");
    }

    [Test]
    public async Task An_empty_unified_transaction_commits_without_hanging()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.GroupCommit));
        store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        await using Producer producer = await TransactionalAsync(store, "empty");
        await using StoreTransaction tx = store.BeginTransaction(producer);
        Task commit = tx.CommitAsync();
        Assert.That(await Task.WhenAny(commit, Task.Delay(TxLog.Tests.Transactions.Tx.Timeout)), Is.SameAs(commit), "the commit completed");
        await commit;
        Assert.That(producer.InTransaction, Is.False);
    }

    // A listener on one store's long-valued instruments (all of them, or the one named).
    private static System.Diagnostics.Metrics.MeterListener ListenToLongs(LogStore store, string? instrumentName, System.Diagnostics.Metrics.MeasurementCallback<long> callback)
    {
        var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter == store.Telemetry.Meter && (instrumentName is null || instrument.Name == instrumentName))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback(callback);
        listener.Start();
        return listener;
    }

    // A group-commit store with topic "t", an engine without timed checkpoints and an int map "m".
    private static (LogStore Store, TransactionEngine Engine, TransactionalMap<int, int> Map) OpenWithMaps(string directory)
    {
        LogStore store = LogStore.Open(directory, Options(DurabilityMode.GroupCommit));
        store.CreateTopic("t");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointInterval = null });
        return (store, engine, engine.OpenMap("m", Serializers.Int32, Serializers.Int32));
    }
}
