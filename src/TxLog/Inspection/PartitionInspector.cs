using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Inspection;

/// <summary>Visits one valid batch found by <see cref="PartitionInspector.ForEachBatch"/>; returns false to stop.</summary>
internal delegate bool InspectedBatchVisitor(RecordBatch batch, SegmentFile segment, long position);

/// <summary>A transaction still open (no marker yet) on one partition.</summary>
/// <param name="ProducerId">The producer.</param>
/// <param name="Epoch">The producer's epoch on this partition.</param>
/// <param name="FirstOffset">Offset of the transaction's first record here.</param>
/// <param name="FirstTimestampMs">Timestamp of that record's batch, when it could be read.</param>
internal sealed record OpenTransaction(long ProducerId, short Epoch, long FirstOffset, long? FirstTimestampMs);

/// <summary>
/// Read-only view of one partition directory of a closed (or open) store, computed as the store's
/// recovery would: the log end offset is the end of the last whole, valid batch of the last segment
/// (a torn tail does not count); producer state is the newest usable snapshot plus a replay of the
/// batches after it (after an unclean close the replay covers at least the last segment), from
/// which come the open transactions and the last stable offset. Never writes. Not thread-safe.
/// </summary>
internal sealed class PartitionInspector
{
    private readonly int _maxBatchBytes;
    private readonly bool _cleanShutdown;
    private long? _logEndOffset;
    private ProducerStateManager? _producerState;
    private List<OpenTransaction>? _open;
    private readonly List<string> _notes = new();

    public PartitionInspector(string directory, string topic, int partition, int maxBatchBytes, bool cleanShutdown)
    {
        Directory = directory;
        Topic = topic;
        Partition = partition;
        _maxBatchBytes = maxBatchBytes;
        _cleanShutdown = cleanShutdown;
        Segments = DataDirectory.ListSegments(directory);
    }

    public string Directory { get; }

    public string Topic { get; }

    public int Partition { get; }

    /// <summary>"topic-partition".</summary>
    public string Name => Topic + "-" + Partition.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public TopicPartition TopicPartition => new(Topic, Partition);

    /// <summary>True when the partition directory exists.</summary>
    public bool Exists => System.IO.Directory.Exists(Directory);

    /// <summary>The segment files in offset order.</summary>
    public IReadOnlyList<SegmentFile> Segments { get; }

    /// <summary>Anything unusual met while reading (torn tail, corrupt snapshot, bad batch), for display.</summary>
    public IReadOnlyList<string> Notes => _notes;

    /// <summary>First offset kept: the first segment's base offset (0 when there is none).</summary>
    public long LogStartOffset => Segments.Count == 0 ? 0 : Segments[0].BaseOffset;

    /// <summary>Bytes of all <c>.log</c> files.</summary>
    public long SizeInBytes => Segments.Sum(s => s.FileLength);

    /// <summary>
    /// The log end offset after the recovery rules: the offset after the last whole, valid batch of
    /// the last segment. For a closed store this is also the high watermark.
    /// </summary>
    public long LogEndOffset => _logEndOffset ??= ComputeLogEndOffset();

    /// <summary>
    /// The last stable offset: the first offset of the earliest open transaction, else the log end
    /// offset; never below the log start offset (as <see cref="LogPartition.LastStableOffset"/>: an open
    /// transaction whose first records retention deleted holds the LSO at the log start).
    /// </summary>
    public long LastStableOffset => Math.Max(LogStartOffset, Math.Min(ProducerState.FirstUnstableOffset, LogEndOffset));

    /// <summary>Producer state as recovery would rebuild it.</summary>
    public ProducerStateManager ProducerState => _producerState ??= LoadProducerState();

    /// <summary>The transactions open on this partition (no COMMIT/ABORT marker yet), by first offset.</summary>
    public IReadOnlyList<OpenTransaction> OpenTransactions => _open ??= FindOpenTransactions();

    private long ComputeLogEndOffset()
    {
        if (Segments.Count == 0)
        {
            return 0;
        }

        SegmentFile last = Segments[^1];
        long start = 0;
        long? indexedLast = null;
        if (File.Exists(last.IndexPath))
        {
            try
            {
                OffsetIndex index = OffsetIndex.Load(OsFileSystem.Instance, last.IndexPath, last.BaseOffset, 0, last.FileLength);
                if (index.Count > 0)
                {
                    start = index.LastPosition;
                    indexedLast = index.LastOffset;
                }
            }
            catch (Exception e) when (e is TxLogException or IOException)
            {
                // Scan the whole segment instead.
            }
        }

        if (indexedLast is not null && ScanEnd(last, start, indexedLast) is { } fromIndex)
        {
            return fromIndex;
        }

        return ScanEnd(last, 0, null) ?? last.BaseOffset;
    }

    // Scans from `position`; returns the next offset after the last valid batch, or null when the
    // first batch there is not the one the index names (then the caller scans from the start).
    private long? ScanEnd(SegmentFile segment, long position, long? firstLastOffset)
    {
        using var scanner = new SegmentScanner(segment.LogPath, _maxBatchBytes, position);
        long next = segment.BaseOffset;
        bool first = true;
        while (true)
        {
            ScanItem item = scanner.Next();
            if (item.Kind == ScanItemKind.Batch && item.Check == BatchCheck.Valid)
            {
                var batch = new RecordBatch(item.Bytes.Span);
                if (first && firstLastOffset is { } expected && batch.LastOffset != expected)
                {
                    return null;
                }

                if (!first && batch.BaseOffset != next)
                {
                    _notes.Add($"{segment.LogPath}: batch at position {item.Position} has base offset {batch.BaseOffset} where {next} was expected");
                    return next;
                }

                first = false;
                next = batch.NextOffset;
                continue;
            }

            if (first && firstLastOffset is not null)
            {
                return null;
            }

            if (item.Kind is not (ScanItemKind.End or ScanItemKind.ZeroTail))
            {
                string what = item.Kind switch
                {
                    ScanItemKind.Batch => "a batch with a bad CRC",
                    ScanItemKind.TornTail => "a torn tail",
                    _ => "invalid bytes",
                };
                _notes.Add($"{segment.LogPath}: {what} at position {item.Position} ({item.Length} bytes) end the valid data");
            }

            return next;
        }
    }

    /// <summary>
    /// Visits every valid batch from the one holding <paramref name="fromOffset"/> to the log end
    /// offset (control batches included), stopping at the first batch that is not valid.
    /// </summary>
    public void ForEachBatch(long fromOffset, InspectedBatchVisitor visitor)
    {
        long end = LogEndOffset;
        int index = Segments.Count - 1;
        while (index > 0 && Segments[index].BaseOffset > fromOffset)
        {
            index--;
        }

        for (int i = Math.Max(index, 0); i < Segments.Count; i++)
        {
            SegmentFile segment = Segments[i];
            long position = i == index ? LookupPosition(segment, fromOffset) : 0;
            if (!VisitSegment(segment, position, fromOffset, end, visitor, out bool stop) && position > 0)
            {
                // The index named a position that is not a batch: scan the segment from its start.
                VisitSegment(segment, 0, fromOffset, end, visitor, out stop);
            }

            if (stop)
            {
                return;
            }
        }
    }

    // False when the very first item at `position` is not a valid batch.
    private bool VisitSegment(SegmentFile segment, long position, long fromOffset, long end, InspectedBatchVisitor visitor, out bool stop)
    {
        stop = false;
        using var scanner = new SegmentScanner(segment.LogPath, _maxBatchBytes, position);
        bool first = true;
        while (true)
        {
            ScanItem item = scanner.Next();
            if (item.Kind == ScanItemKind.End)
            {
                return true;
            }

            if (item.Kind != ScanItemKind.Batch || item.Check != BatchCheck.Valid)
            {
                if (first && position > 0)
                {
                    return false;
                }

                stop = true;
                return true;
            }

            first = false;
            var batch = new RecordBatch(item.Bytes.Span);
            if (batch.BaseOffset >= end)
            {
                stop = true;
                return true;
            }

            if (batch.LastOffset >= fromOffset && !visitor(batch, segment, item.Position))
            {
                stop = true;
                return true;
            }
        }
    }

    private static long LookupPosition(SegmentFile segment, long offset)
    {
        if (!File.Exists(segment.IndexPath))
        {
            return 0;
        }

        try
        {
            return OffsetIndex.Load(OsFileSystem.Instance, segment.IndexPath, segment.BaseOffset, 0, segment.FileLength).Lookup(offset);
        }
        catch (Exception e) when (e is TxLogException or IOException)
        {
            return 0;
        }
    }

    // Mirrors LogPartition.LoadProducerState without writing anything.
    private ProducerStateManager LoadProducerState()
    {
        var state = new ProducerStateManager(Name);
        long leo = LogEndOffset;
        long limit = _cleanShutdown || Segments.Count == 0 ? leo : Segments[^1].BaseOffset;
        long start = LogStartOffset;
        List<long> snapshots = System.IO.Directory.Exists(Directory) ? ProducerStateManager.ListSnapshots(OsFileSystem.Instance, Directory) : [];
        for (int i = snapshots.Count - 1; i >= 0; i--)
        {
            long offset = snapshots[i];
            if (offset > leo || offset > limit || offset < start)
            {
                continue;
            }

            try
            {
                state.LoadSnapshot(OsFileSystem.Instance, ProducerStateManager.SnapshotPath(Directory, offset));
                start = offset;
                break;
            }
            catch (Exception e) when (e is TxLogException or IOException)
            {
                _notes.Add($"{Name}: ignored producer snapshot at {offset} ({e.Message})");
                state.Reset();
            }
        }

        if (start < leo)
        {
            try
            {
                ForEachBatch(start, (batch, _, _) =>
                {
                    state.Replay(batch);
                    return true;
                });
            }
            catch (CorruptRecordException e)
            {
                _notes.Add($"{Name}: producer state replay stopped: {e.Message}");
            }
        }

        return state;
    }

    private List<OpenTransaction> FindOpenTransactions()
    {
        var list = new List<OpenTransaction>();
        foreach ((long pid, short epoch, long first) in ProducerState.OngoingTransactions())
        {
            long? timestamp = null;
            if (first >= LogStartOffset && first < LogEndOffset)
            {
                ForEachBatch(first, (batch, _, _) =>
                {
                    if (batch.BaseOffset <= first && batch.LastOffset >= first)
                    {
                        timestamp = batch.BaseTimestamp;
                    }

                    return false;
                });
            }

            list.Add(new OpenTransaction(pid, epoch, first, timestamp));
        }

        list.Sort(static (a, b) => a.FirstOffset.CompareTo(b.FirstOffset));
        return list;
    }
}
