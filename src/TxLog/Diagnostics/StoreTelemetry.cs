using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace TxLog.Diagnostics;

/// <summary>
/// The names under which TxLog publishes its metrics and traces. Subscribe with a
/// <see cref="MeterListener"/> / OpenTelemetry to the meter <see cref="MeterName"/> and with an
/// <see cref="ActivityListener"/> to the source <see cref="ActivitySourceName"/>.
/// </summary>
public static class TxLogDiagnostics
{
    /// <summary>Name of the <see cref="Meter"/> every store publishes its instruments on ("TxLog").</summary>
    public const string MeterName = "TxLog";

    /// <summary>Name of the <see cref="System.Diagnostics.ActivitySource"/> of commit, abort, recovery and checkpoint spans ("TxLog").</summary>
    public const string ActivitySourceName = "TxLog";

    /// <summary>Tag on the store's meter and on every span: the full path of the store's directory.</summary>
    public const string StoreTag = "txlog.store";

    internal static readonly ActivitySource Source = new(ActivitySourceName, typeof(TxLogDiagnostics).Assembly.GetName().Version?.ToString());
}

/// <summary>
/// One store's logger, meter and instruments. With no listener attached an instrument's
/// <c>Enabled</c> is false, and every hot-path call site checks it first: the cost is one volatile
/// read. Nothing is logged per record.
/// </summary>
internal sealed class StoreTelemetry : IDisposable
{
    /// <summary>For partition logs and engines opened outside a store (tests): logs nothing, measures into a meter nobody lists.</summary>
    public static readonly StoreTelemetry Disabled = new(null, null, TimeSpan.MaxValue);

    private readonly string? _directory;

    public StoreTelemetry(string? directory, ILoggerFactory? loggerFactory, TimeSpan slowFsyncThreshold)
    {
        _directory = directory;
        Logger = (ILogger?)loggerFactory?.CreateLogger("TxLog") ?? NullLogger.Instance;
        SlowFsyncTicks = slowFsyncThreshold == TimeSpan.MaxValue ? long.MaxValue : (long)(slowFsyncThreshold.TotalSeconds * Stopwatch.Frequency);
        SlowFsyncThreshold = slowFsyncThreshold;
        var options = new MeterOptions(directory is null ? TxLogDiagnostics.MeterName + ".Detached" : TxLogDiagnostics.MeterName)
        {
            Version = typeof(StoreTelemetry).Assembly.GetName().Version?.ToString(),
            Tags = directory is null ? null : [new(TxLogDiagnostics.StoreTag, directory)],
        };
        Meter = new Meter(options);
        RecordsAppended = Meter.CreateCounter<long>("txlog.records.appended", "{record}", "Records appended to partition logs (control records included).");
        BytesAppended = Meter.CreateCounter<long>("txlog.bytes.appended", "By", "Bytes of record batches appended to partition logs.");
        Fsyncs = Meter.CreateCounter<long>("txlog.fsync.count", "{fsync}", "fsyncs of partition log segments.");
        FsyncDuration = Meter.CreateHistogram<double>("txlog.fsync.duration", "ms", "Duration of one fsync of a partition log segment.");
        GroupCommitBatch = Meter.CreateHistogram<int>("txlog.group_commit.batch_size", "{waiter}", "Commit waiters made durable by one group-commit fsync.");
        CommitDuration = Meter.CreateHistogram<double>("txlog.commit.duration", "ms", "Latency of a successful commit, from the commit call to its acknowledgement (tag txlog.transaction.kind: log, map or unified).");
        TransactionsCommitted = Meter.CreateCounter<long>("txlog.transactions.committed", "{transaction}", "Transactions committed (tag txlog.transaction.kind).");
        TransactionsAborted = Meter.CreateCounter<long>("txlog.transactions.aborted", "{transaction}", "Transactions aborted, timed-out ones included (tag txlog.transaction.kind).");
        TransactionsTimedOut = Meter.CreateCounter<long>("txlog.transactions.timed_out", "{transaction}", "Log transactions the coordinator aborted because they outlived their timeout.");
        CheckpointDuration = Meter.CreateHistogram<double>("txlog.checkpoint.duration", "ms", "Duration of an MVCC checkpoint.");
        RecoveryDuration = Meter.CreateHistogram<double>("txlog.recovery.duration", "ms", "Duration of opening the store (recovery included).");
    }

    public ILogger Logger { get; }

    public Meter Meter { get; }

    public TimeSpan SlowFsyncThreshold { get; }

    /// <summary>The slow-fsync threshold in <see cref="Stopwatch"/> ticks.</summary>
    public long SlowFsyncTicks { get; }

    public Counter<long> RecordsAppended { get; }

    public Counter<long> BytesAppended { get; }

    public Counter<long> Fsyncs { get; }

    public Histogram<double> FsyncDuration { get; }

    public Histogram<int> GroupCommitBatch { get; }

    public Histogram<double> CommitDuration { get; }

    public Counter<long> TransactionsCommitted { get; }

    public Counter<long> TransactionsAborted { get; }

    public Counter<long> TransactionsTimedOut { get; }

    public Histogram<double> CheckpointDuration { get; }

    public Histogram<double> RecoveryDuration { get; }

    /// <summary>Starts a span (null when nobody listens) tagged with this store.</summary>
    public Activity? StartActivity(string name)
    {
        if (!TxLogDiagnostics.Source.HasListeners())
        {
            return null;
        }

        Activity? activity = TxLogDiagnostics.Source.StartActivity(name, ActivityKind.Internal);
        activity?.SetTag(TxLogDiagnostics.StoreTag, _directory);
        return activity;
    }

    /// <summary>Milliseconds since a <see cref="Stopwatch.GetTimestamp"/> value.</summary>
    public static double ElapsedMs(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds;

    /// <summary>Records a finished commit or abort of <paramref name="kind"/>.</summary>
    public void TransactionEnded(string kind, bool committed, long startTimestamp)
    {
        var tags = new TagList { { KindTag, kind } };
        if (committed)
        {
            Record(CommitDuration, CommitDuration.Enabled ? ElapsedMs(startTimestamp) : 0, in tags);
            Add(TransactionsCommitted, 1, in tags);
        }
        else
        {
            Add(TransactionsAborted, 1, in tags);
        }
    }

    // The storage paths call instruments through these: with nobody listening they cost one
    // volatile read, and a listener whose callback throws cannot fail (or, after a write, make a
    // caller retry and duplicate) the operation being measured.

    /// <summary>Adds to a counter if anybody listens; never throws.</summary>
    public static void Add(Counter<long> counter, long value, in TagList tags)
    {
        if (!counter.Enabled)
        {
            return;
        }

        try
        {
            counter.Add(value, in tags);
        }
        catch (Exception)
        {
            // The listener's bug; the storage operation succeeded.
        }
    }

    /// <summary>Records into a histogram if anybody listens; never throws.</summary>
    public static void Record<T>(Histogram<T> histogram, T value, in TagList tags)
        where T : struct
    {
        if (!histogram.Enabled)
        {
            return;
        }

        try
        {
            histogram.Record(value, in tags);
        }
        catch (Exception)
        {
            // As in Add.
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentDictionary<(long ProducerId, short Epoch), byte> _fencingLogged = new();

    /// <summary>
    /// Logs event 2002 once per fenced producer epoch: a zombie that keeps retrying is rejected every
    /// time, but reported once (the set is bounded; after 4096 distinct epochs it starts over).
    /// </summary>
    public void ProducerFenced(string where, long producerId, short epoch, short currentEpoch)
    {
        if (!Logger.IsEnabled(LogLevel.Warning))
        {
            return;
        }

        if (_fencingLogged.Count >= 4096)
        {
            _fencingLogged.Clear();
        }

        if (_fencingLogged.TryAdd((producerId, epoch), 0))
        {
            LogMessages.ProducerFenced(Logger, where, producerId, epoch, currentEpoch);
        }
    }

    /// <summary>Tag naming what a transaction touched: <c>log</c>, <c>map</c> or <c>unified</c>.</summary>
    public const string KindTag = "txlog.transaction.kind";

    public void Dispose()
    {
        if (!ReferenceEquals(this, Disabled))
        {
            Meter.Dispose();
        }
    }
}
