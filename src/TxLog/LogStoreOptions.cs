using Microsoft.Extensions.Logging;
using TxLog.Durability;

namespace TxLog;

/// <summary>
/// Settings of a <see cref="LogStore"/>. Sizes are in bytes, durations are <see cref="TimeSpan"/>s.
/// Topic-level settings (<see cref="TopicOptions"/>) override the segment and retention defaults.
/// </summary>
public sealed class LogStoreOptions
{
    /// <summary>When appends are acknowledged relative to fsync. Default: <see cref="DurabilityMode.GroupCommit"/>.</summary>
    public DurabilityMode Durability { get; set; } = DurabilityMode.GroupCommit;

    /// <summary>Interval between fsyncs in <see cref="DurabilityMode.Periodic"/> mode (the loss window on power failure). Default 1 s. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Default segment size before a roll (Kafka's segment.bytes). Default 1 GiB.</summary>
    public long SegmentBytes { get; set; } = 1L << 30;

    /// <summary>Default age at which the active segment rolls (Kafka's segment.ms); null = never. Default 7 days.</summary>
    public TimeSpan? SegmentAge { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Largest offset/time index file; the segment rolls when one is full. Default 10 MiB.</summary>
    public int MaxIndexBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Bytes of log between offset index entries. Default 4096.</summary>
    public int IndexIntervalBytes { get; set; } = 4096;

    /// <summary>
    /// How far ahead of the data the active segment of a partition that commits durably is filled
    /// with zeros (0 disables). fdatasync of overwritten blocks is cheaper than of appended ones, which
    /// shortens every commit; the zeros are cut off at roll and close, and after a crash recovery
    /// truncates them like any torn tail. Default 16 MiB.
    /// </summary>
    public long PreallocateBytes { get; set; } = 16L << 20;

    /// <summary>Default size limit per partition for retention; null = unlimited (the default).</summary>
    public long? RetentionBytes { get; set; }

    /// <summary>Default age limit for retention (by the newest record of a segment); null = keep forever (the default).</summary>
    public TimeSpan? RetentionTime { get; set; }

    /// <summary>How often the background task applies retention (and checks whether <c>__consumer_offsets</c> needs restating). Default 5 minutes. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan RetentionCheckInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the coordinator looks for transactions open longer than their timeout. Default 1 s. At most int.MaxValue milliseconds (about 24.8 days).</summary>
    public TimeSpan TransactionTimeoutCheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Largest batch accepted, header included. Default 1 MiB + 12 bytes (Kafka's message.max.bytes).</summary>
    public int MaxBatchBytes { get; set; } = 1024 * 1024 + 12;

    /// <summary>
    /// How long <see cref="LogStore.Dispose"/> waits in all for in-flight fsyncs and background work.
    /// Default 30 s. At most int.MaxValue milliseconds (about 24.8 days). When it runs out while a file
    /// operation still runs, the store writes nothing more but keeps its directory locked until that
    /// operation returns (see <see cref="LogStore.Dispose"/>).
    /// </summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The store's clock. Its wall clock (<see cref="TimeProvider.GetUtcNow"/>) gives record timestamps, segment
    /// age and retention, and the start times recorded in <c>__transaction_state</c>; its monotonic timestamp
    /// (<see cref="TimeProvider.GetTimestamp"/>) times transaction timeouts and consumer-group poll deadlines.
    /// Default <see cref="TimeProvider.System"/>.
    /// </summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>
    /// Where the store logs (category "TxLog"): recovery actions, transactions aborted on timeout,
    /// fencing, checkpoints, slow fsyncs, failed partitions, lock conflicts. Nothing is logged per
    /// record. Null (the default): nothing is logged. Event ids are listed in docs/operations.md.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>An fsync that takes at least this long is logged as a warning (event 4001). Default: 200 ms.</summary>
    public TimeSpan SlowFsyncThreshold { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The file-system seam (tests inject faults here).</summary>
    internal Storage.IFileSystem FileSystem { get; set; } = Storage.OsFileSystem.Instance;

    internal void Validate()
    {
        if (!Enum.IsDefined(Durability))
        {
            throw new ArgumentOutOfRangeException(nameof(Durability), Durability, "Unknown durability mode.");
        }

        // The intervals drive timers and Task.Delay, the close waits with Task.Wait: longer than
        // int.MaxValue ms throws there (the background loop died and every close reported a timeout;
        // the coordinator's timer failed the open after recovery had written).
        PositiveWaitable(FlushInterval, nameof(FlushInterval));
        PositiveWaitable(RetentionCheckInterval, nameof(RetentionCheckInterval));
        PositiveWaitable(CloseTimeout, nameof(CloseTimeout));
        PositiveWaitable(TransactionTimeoutCheckInterval, nameof(TransactionTimeoutCheckInterval));
        Positive(SlowFsyncThreshold, nameof(SlowFsyncThreshold));
        if (SegmentAge is { } age)
        {
            Positive(age, nameof(SegmentAge));
        }

        if (RetentionTime is { } retention)
        {
            Positive(retention, nameof(RetentionTime));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBatchBytes, Records.RecordBatchLayout.HeaderSize + 1, nameof(MaxBatchBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(SegmentBytes, (long)Records.RecordBatchLayout.HeaderSize + 1, nameof(SegmentBytes)); // a batch larger than a segment gets a segment of its own
        ArgumentOutOfRangeException.ThrowIfGreaterThan(SegmentBytes, (long)int.MaxValue + 1, nameof(SegmentBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxIndexBytes, Storage.TimeIndex.EntrySize, nameof(MaxIndexBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(IndexIntervalBytes, nameof(IndexIntervalBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(PreallocateBytes, nameof(PreallocateBytes));
        if (RetentionBytes is { } bytes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(bytes, nameof(RetentionBytes));
        }

        ArgumentNullException.ThrowIfNull(TimeProvider, nameof(TimeProvider));
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(name, value, "Must be positive.");
        }
    }

    private static void PositiveWaitable(TimeSpan value, string name)
    {
        Positive(value, name);
        if (value.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, value, $"At most {TimeSpan.FromMilliseconds(int.MaxValue)} (int.MaxValue milliseconds).");
        }
    }
}

/// <summary>Per-topic overrides of the store's segment and retention settings; null keeps the store default.</summary>
public sealed record TopicOptions
{
    /// <summary>Segment size before a roll.</summary>
    public long? SegmentBytes { get; init; }

    /// <summary>Age at which the active segment rolls.</summary>
    public TimeSpan? SegmentAge { get; init; }

    /// <summary>Size limit per partition for retention.</summary>
    public long? RetentionBytes { get; init; }

    /// <summary>Age limit for retention.</summary>
    public TimeSpan? RetentionTime { get; init; }
}

/// <summary>A topic as listed by <see cref="LogStore.ListTopics"/>.</summary>
/// <param name="Name">The topic name.</param>
/// <param name="Partitions">Number of partitions.</param>
/// <param name="Options">The topic's overrides.</param>
public sealed record TopicDescription(string Name, int Partitions, TopicOptions Options);
