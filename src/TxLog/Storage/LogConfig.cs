namespace TxLog.Storage;

/// <summary>
/// The resolved settings of one partition log (store defaults overridden by the topic's). Immutable.
/// </summary>
internal sealed record LogConfig
{
    /// <summary>Roll the active segment before it would exceed this size (Kafka: segment.bytes, 1 GiB).</summary>
    public long SegmentBytes { get; init; } = 1L << 30;

    /// <summary>Roll the active segment when its first batch is older than this (Kafka: segment.ms); null = never.</summary>
    public TimeSpan? SegmentAge { get; init; }

    /// <summary>Largest index file; the segment rolls when an index is full (Kafka: segment.index.bytes, 10 MiB).</summary>
    public int MaxIndexBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>Bytes of log between offset index entries (Kafka: index.interval.bytes, 4096).</summary>
    public int IndexIntervalBytes { get; init; } = 4096;

    /// <summary>Delete old segments while the partition is larger than this; null = no size limit.</summary>
    public long? RetentionBytes { get; init; }

    /// <summary>Delete segments whose newest record is older than this; null = keep forever.</summary>
    public TimeSpan? RetentionTime { get; init; }

    /// <summary>Largest batch accepted, header included (Kafka: message.max.bytes).</summary>
    public int MaxBatchBytes { get; init; } = 1024 * 1024 + 12;

    /// <summary>
    /// How far ahead of the write position the active segment of a partition that commits durably is
    /// filled with real zeros (0 = never). An fdatasync of overwritten, already allocated blocks
    /// skips the extent and size metadata an append has to commit, so commits get cheaper.
    /// </summary>
    public long PreallocateBytes { get; init; } = 16L << 20;

    /// <summary>Size of a reader's buffer (recovery scans, readers).</summary>
    public int ReadBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>Logger and instruments of the store the partition belongs to.</summary>
    public Diagnostics.StoreTelemetry Telemetry { get; init; } = Diagnostics.StoreTelemetry.Disabled;
}
