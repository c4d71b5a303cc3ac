using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TxLog.Diagnostics;
using TxLog.Records;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Storage;

/// <summary>Where an appended batch went.</summary>
/// <param name="BaseOffset">Offset of the batch's first record.</param>
/// <param name="LastOffset">Offset of its last record.</param>
/// <param name="Position">File position of the batch in its segment.</param>
/// <param name="SegmentBaseOffset">Base offset of the segment the batch went to.</param>
/// <param name="Rolled">True when this append started a new segment (at <paramref name="BaseOffset"/>).</param>
internal readonly record struct AppendInfo(long BaseOffset, long LastOffset, long Position, long SegmentBaseOffset, bool Rolled);

/// <summary>Visits one batch of a partition (control batches included) with the segment holding it.</summary>
internal delegate void BatchVisitor(RecordBatch batch, LogSegment segment);

/// <summary>
/// One partition: an ordered list of segments in a directory <c>{topic}-{partition}</c>, offsets
/// dense from the log start offset to the log end offset (LEO). Appends write to the page cache;
/// <see cref="Sync()"/> makes them durable and advances the high watermark (HW). Segments roll by
/// size, age and full index; retention deletes whole old segments.
/// Thread-safety: all public members are thread-safe. Appends and structural changes (roll,
/// retention, truncation) take <c>_lock</c>; fsyncs take <c>_syncLock</c> (lock order:
/// <c>_syncLock</c> then <c>_lock</c>) so an fsync never blocks appenders; readers work on a
/// copy-on-write snapshot of the segment list.
/// </summary>
internal sealed class PartitionLog : IDisposable
{
    private readonly IFileSystem _fileSystem;
    private readonly LogConfig _config;
    private readonly TimeProvider _time;
    private readonly bool _hwFollowsLeo;        // durability mode None: nothing is ever promised, HW = LEO
    private readonly object _lock = new();      // appends, rolls, retention
    private readonly object _syncLock = new();  // one fsync at a time per partition
    private LogSegment[] _segments;             // copy-on-write; last = active
    private long _logEndOffset;
    private long _highWatermark;
    private Exception? _failure;                // set when a write or fsync failed: the partition refuses further writes
    private int _preallocating;                 // 1 while a zero-fill work item is queued or running
    private bool _disposed;
    private readonly TagList _tags;             // topic + partition, for the instruments

    // Checksums of the immutable segments' .txnindex files (final once their segment rolled), by base
    // offset, for txnindex.checksums; and that file's content as last read or written (identical content
    // is not written again). Under _lock, or at open before anything else runs.
    private readonly Dictionary<long, TransactionIndexChecksum> _txnIndexChecksums = new();
    private byte[]? _txnIndexChecksumsOnDisk;

    private PartitionLog(IFileSystem fileSystem, string directory, string topic, int partition, LogConfig config, TimeProvider time, bool hwFollowsLeo, LogSegment[] segments)
    {
        _fileSystem = fileSystem;
        Directory = directory;
        Topic = topic;
        Partition = partition;
        _config = config;
        _time = time;
        _hwFollowsLeo = hwFollowsLeo;
        _segments = segments;
        _logEndOffset = segments[^1].NextOffset;
        _highWatermark = _logEndOffset; // everything found on open is on disk
        _tags = new TagList { { "txlog.topic", topic }, { "txlog.partition", partition } };
    }

    /// <summary>The partition's directory.</summary>
    public string Directory { get; }

    /// <summary>Topic name.</summary>
    public string Topic { get; }

    /// <summary>Partition number.</summary>
    public int Partition { get; }

    /// <summary>The settings.</summary>
    public LogConfig Config => _config;

    /// <summary>"topic-partition", for messages.</summary>
    public string Name => Topic + "-" + Partition.ToString(CultureInfo.InvariantCulture);

    /// <summary>The partition's topic and number.</summary>
    public TopicPartition Id => new(Topic, Partition);

    /// <summary>First offset still in the log.</summary>
    public long LogStartOffset => Volatile.Read(ref _segments)[0].BaseOffset;

    /// <summary>Offset the next record will get.</summary>
    public long LogEndOffset => Volatile.Read(ref _logEndOffset);

    /// <summary>End of durable data: every offset below it has been fsynced (or, in mode None, written).</summary>
    public long HighWatermark => _hwFollowsLeo ? LogEndOffset : Volatile.Read(ref _highWatermark);

    /// <summary>Every offset below this has been fsynced (whatever the durability mode).</summary>
    public long DurableOffset => Volatile.Read(ref _highWatermark);

    /// <summary>Number of segments.</summary>
    public int SegmentCount => Volatile.Read(ref _segments).Length;

    /// <summary>Total bytes of all segments.</summary>
    public long SizeInBytes
    {
        get
        {
            long total = 0;
            foreach (LogSegment segment in Volatile.Read(ref _segments))
            {
                total += segment.Size;
            }

            return total;
        }
    }

    internal LogSegment[] Segments => Volatile.Read(ref _segments);

    /// <summary>The error that stopped this partition, if any.</summary>
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>
    /// Opens or creates the partition in <paramref name="directory"/>. With <paramref name="trustTail"/>
    /// (clean shutdown), no segment is scanned beyond its last index entry; otherwise the last segment
    /// is validated batch by batch and a torn tail truncated.
    /// </summary>
    public static PartitionLog Open(IFileSystem fileSystem, string directory, string topic, int partition, LogConfig config, TimeProvider time, bool hwFollowsLeo, bool trustTail, RecoveryReport report)
    {
        fileSystem.CreateDirectory(directory);
        string[] logFiles = fileSystem.GetFiles(directory, "*.log");
        var baseOffsets = new List<long>(logFiles.Length);
        foreach (string file in logFiles)
        {
            string name = Path.GetFileNameWithoutExtension(file);
            if (name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out long baseOffset))
            {
                baseOffsets.Add(baseOffset);
            }
        }

        baseOffsets.Sort();
        var segments = new List<LogSegment>(Math.Max(1, baseOffsets.Count));
        try
        {
            for (int i = 0; i < baseOffsets.Count; i++)
            {
                bool last = i == baseOffsets.Count - 1;
                LogSegment segment;
                if (last && !trustTail)
                {
                    segment = LogSegment.OpenRecovering(fileSystem, directory, baseOffsets[i], config, out long truncated);
                    report.ScannedSegments++;
                    if (truncated > 0)
                    {
                        report.TruncatedTail(segment.LogPath, segment.Size, truncated);
                    }
                }
                else
                {
                    segment = LogSegment.OpenTrusted(fileSystem, directory, baseOffsets[i], config, out bool rebuilt);
                    if (rebuilt)
                    {
                        if (!last)
                        {
                            // Only the active segment's indexes are written again (at roll and at
                            // close); an older segment's rebuilt indexes must be kept now, or every
                            // open would scan the segment again.
                            try
                            {
                                segment.PersistIndexes();
                            }
                            catch
                            {
                                segment.Dispose();
                                throw;
                            }
                        }

                        report.IndexRebuilt(segment.LogPath);
                    }
                }

                if (segments.Count > 0 && segments[^1].NextOffset != segment.BaseOffset)
                {
                    // Offsets must be dense across segments. An empty segment after a crash in the
                    // middle of a roll is the only gap-free exception (it has NextOffset == BaseOffset).
                    throw new CorruptRecordException($"Segment starts at offset {segment.BaseOffset} but the previous segment ends at {segments[^1].NextOffset}", segment.LogPath, 0);
                }

                segments.Add(segment);
            }

            if (segments.Count == 0)
            {
                segments.Add(LogSegment.Create(fileSystem, directory, 0, config));
                fileSystem.SyncDirectory(directory);
            }
        }
        catch
        {
            foreach (LogSegment segment in segments)
            {
                segment.Dispose();
            }

            throw;
        }

        return new PartitionLog(fileSystem, directory, topic, partition, config, time, hwFollowsLeo, segments.ToArray());
    }

    /// <summary>
    /// Appends a batch sealed by a <see cref="RecordBatchBuilder"/>: assigns offsets (patching the base
    /// offset, which the CRC does not cover), rolls the segment if needed and writes to the page cache.
    /// </summary>
    public AppendInfo Append(Memory<byte> batch, int recordCount, long maxTimestamp)
    {
        if (batch.Length > _config.MaxBatchBytes)
        {
            throw new ArgumentException($"The batch is {batch.Length} bytes; the largest allowed is {_config.MaxBatchBytes} bytes.", nameof(batch));
        }

        Span<byte> bytes = batch.Span;
        lock (_lock)
        {
            ThrowIfUnusableUnsynchronized();
            LogSegment active = _segments[^1];
            long baseOffset = _logEndOffset;
            bool rolled = false;
            if (ShouldRollUnsynchronized(active, batch.Length, baseOffset + recordCount - 1))
            {
                active = RollUnsynchronized(baseOffset);
                rolled = true;
            }

            BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(L.BaseOffsetOffset), baseOffset);
            long lastOffset = baseOffset + recordCount - 1;
            long position = active.Size;
            try
            {
                active.Append(bytes, lastOffset, maxTimestamp);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw FailUnsynchronized("write", e);
            }

            Volatile.Write(ref _logEndOffset, lastOffset + 1);
            if (_hwFollowsLeo)
            {
                AdvanceHighWatermarkNotify();
            }

            StoreTelemetry.Add(_config.Telemetry.RecordsAppended, recordCount, in _tags);
            StoreTelemetry.Add(_config.Telemetry.BytesAppended, batch.Length, in _tags);

            return new AppendInfo(baseOffset, lastOffset, position, active.BaseOffset, rolled);
        }
    }

    private bool ShouldRollUnsynchronized(LogSegment active, int batchSize, long lastOffset)
    {
        if (active.Size == 0)
        {
            return false;
        }

        if (active.Size + batchSize > _config.SegmentBytes || active.IndexIsFull)
        {
            return true;
        }

        if (lastOffset - active.BaseOffset > int.MaxValue || active.Size + batchSize > int.MaxValue)
        {
            return true; // relative offsets and positions in the indexes are int32
        }

        if (_config.SegmentAge is { } age && active.FirstBatchTimestamp >= 0)
        {
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            return now - active.FirstBatchTimestamp >= (long)age.TotalMilliseconds;
        }

        return false;
    }

    // Makes the active segment durable and immutable, then starts a new one at `baseOffset`.
    private LogSegment RollUnsynchronized(long baseOffset)
    {
        LogSegment old = _segments[^1];
        LogSegment created;
        try
        {
            old.TrimPreallocation();
            long started = Stopwatch.GetTimestamp();
            old.Flush();
            ObserveFsync(old, started);
            old.SyncTransactionIndex(); // its file entry is made durable by the directory fsync below
            if (old.IndexSuspect)
            {
                old.DeleteIndexFiles(); // never persist an index known to be wrong: the next open rebuilds it
            }
            else
            {
                old.PersistIndexes();
            }

            // The old segment's .txnindex is final now: record its checksum (the rename is made durable by
            // the directory fsync below; until then a crash leaves the previous file, which is only stale).
            WriteTransactionIndexChecksumsUnsynchronized(_segments, activeIsFinal: true);
            created = LogSegment.Create(_fileSystem, Directory, baseOffset, _config);
            _fileSystem.SyncDirectory(Directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw FailUnsynchronized("segment roll", e);
        }

        AdvanceHighWatermark(old.NextOffset);
        var segments = new LogSegment[_segments.Length + 1];
        _segments.CopyTo(segments, 0);
        segments[^1] = created;
        Volatile.Write(ref _segments, segments);
        return created;
    }

    /// <summary>
    /// Makes everything appended so far durable and advances the HW to it. Concurrent appends go on;
    /// they are covered by a later sync. Returns the new HW.
    /// </summary>
    public long Sync() => Sync(preallocate: false);

    /// <summary>
    /// <see cref="Sync()"/>; with <paramref name="preallocate"/> (callers that wait for durability, i.e.
    /// commit-heavy partitions) it also keeps zeros written ahead of the data so later fsyncs
    /// overwrite allocated blocks instead of extending the file.
    /// </summary>
    public long Sync(bool preallocate)
    {
        if (preallocate && _config.PreallocateBytes > 0)
        {
            MaybeStartPreallocation();
        }

        lock (_syncLock)
        {
            LogSegment active;
            long target;
            lock (_lock)
            {
                // After a clean close everything up to the log end is durable: a follower woken to
                // lead once more must see success, not ObjectDisposedException.
                if (_disposed && _failure is null && _logEndOffset <= Volatile.Read(ref _highWatermark))
                {
                    return Volatile.Read(ref _highWatermark);
                }

                ThrowIfUnusableUnsynchronized();
                active = _segments[^1];
                target = _logEndOffset;
            }

            if (target <= Volatile.Read(ref _highWatermark))
            {
                return target;
            }

            long started = Stopwatch.GetTimestamp();
            try
            {
                // Older segments were fsynced when they rolled, so the active one is all that can be dirty.
                active.Flush();
            }
            catch (ObjectDisposedException) when (_fileSystem is SealableFileSystem { IsSealed: true })
            {
                throw; // the store closed (a close that gave up on this partition): refused, not failed
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
            {
                lock (_lock)
                {
                    throw FailUnsynchronized("fsync", e);
                }
            }

            ObserveFsync(active, started);
            AdvanceHighWatermark(target);
            return target;
        }
    }

    /// <summary>fsyncs of this partition's segment data run so far (commit, roll and close fsyncs).</summary>
    internal long FsyncCount => Interlocked.Read(ref _fsyncs);

    private long _fsyncs;

    // Counts, times and checks for slowness one fsync of segment data that started at `started`.
    private void ObserveFsync(LogSegment segment, long started)
    {
        Interlocked.Increment(ref _fsyncs);
        StoreTelemetry telemetry = _config.Telemetry;
        long elapsed = Stopwatch.GetTimestamp() - started;
        StoreTelemetry.Add(telemetry.Fsyncs, 1, in _tags);
        StoreTelemetry.Record(telemetry.FsyncDuration, elapsed * 1000.0 / Stopwatch.Frequency, in _tags);
        if (elapsed >= telemetry.SlowFsyncTicks)
        {
            LogMessages.SlowFsync(telemetry.Logger, segment.LogPath, elapsed * 1000.0 / Stopwatch.Frequency, telemetry.SlowFsyncThreshold.TotalMilliseconds);
        }
    }

    private void MaybeStartPreallocation()
    {
        LogSegment active = Volatile.Read(ref _segments)[^1];
        if (active.AllocatedEnd - active.Size >= _config.PreallocateBytes / 2
            || active.AllocatedEnd >= _config.SegmentBytes
            || Interlocked.CompareExchange(ref _preallocating, 1, 0) != 0)
        {
            return;
        }

        ThreadPool.UnsafeQueueUserWorkItem(static log => log.PreallocateWork(), this, preferLocal: false);
    }

    // Zero-fills ahead of the active segment's data, one piece at a time: the piece is written under
    // the partition lock (so no append writes the same bytes) and fsynced outside it, so the zeros are
    // clean before commits overwrite them. An optimisation only: a failed write of zeros just stops
    // it (the data before them is untouched, and the next append reports a real problem). A failed
    // fsync does not: it covered every dirty page of the file, appended batches included, and Linux
    // reports a writeback error once per open file description, so the zeros are written and fsynced
    // through a second handle of the file: the commit fsyncs on the main handle still see any error,
    // and never wait for a zero-fill behind the sync lock. A failure also stops the partition.
    private void PreallocateWork()
    {
        try
        {
            while (true)
            {
                LogSegment active;
                lock (_lock)
                {
                    if (_disposed || _failure is not null)
                    {
                        return;
                    }

                    active = _segments[^1];
                    if (active.AllocatedEnd - active.Size >= _config.PreallocateBytes
                        || active.AllocatedEnd + LogSegment.PreallocationPieceBytes > _config.SegmentBytes)
                    {
                        return;
                    }

                    active.PreallocatePieceUnsynchronized();
                }

                try
                {
                    active.FlushZeros();
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    lock (_lock)
                    {
                        _ = FailUnsynchronized("fsync of preallocated space", e);
                    }

                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            // Preallocation is best effort; see above.
        }
        finally
        {
            Volatile.Write(ref _preallocating, 0);
        }
    }

    private void AdvanceHighWatermark(long offset)
    {
        long current = Volatile.Read(ref _highWatermark);
        while (offset > current)
        {
            long seen = Interlocked.CompareExchange(ref _highWatermark, offset, current);
            if (seen == current)
            {
                AdvanceHighWatermarkNotify();
                return;
            }

            current = seen;
        }
    }

    /// <summary>Called (without locks held by the caller's contract) after the high watermark moved.</summary>
    public Action? HighWatermarkAdvanced { get; set; }

    private void AdvanceHighWatermarkNotify() => HighWatermarkAdvanced?.Invoke();

    /// <summary>
    /// Called with the new log start offset when retention or <see cref="DeleteSegmentsBefore"/> moved it,
    /// right after the shorter segment list is published and with the partition's locks held: it must
    /// be quick and take no lock that is held while calling into this log. (Waiters are woken later,
    /// without locks, by <see cref="LogStartAdvanced"/>.)
    /// </summary>
    public Action<long>? LogStartMovedLocked { get; set; }

    /// <summary>
    /// At open (before anything else uses the log): takes the verified checksums of every segment's
    /// <c>.txnindex</c> (ascending, one per segment, the active one's last) and writes
    /// <c>txnindex.checksums</c> when its content (<paramref name="onDisk"/>, null when missing or
    /// unreadable) differs.
    /// </summary>
    internal void InitTransactionIndexChecksums(List<TransactionIndexChecksum> checksums, byte[]? onDisk)
    {
        _txnIndexChecksums.Clear();
        for (int i = 0; i < checksums.Count - 1; i++)
        {
            _txnIndexChecksums[checksums[i].SegmentBaseOffset] = checksums[i];
        }

        _txnIndexChecksumsOnDisk = onDisk;
        WriteTransactionIndexChecksumsIfChanged(checksums, syncDirectory: true);
    }

    // Writes txnindex.checksums for `segments` (the current list): the immutable ones from the cache (or
    // their file), the last one from its file, cached only when it is final (it is rolling). Caller holds
    // _lock.
    private void WriteTransactionIndexChecksumsUnsynchronized(LogSegment[] segments, bool activeIsFinal)
    {
        var checksums = new List<TransactionIndexChecksum>(segments.Length);
        for (int i = 0; i < segments.Length; i++)
        {
            long baseOffset = segments[i].BaseOffset;
            bool last = i == segments.Length - 1;
            if (last || !_txnIndexChecksums.TryGetValue(baseOffset, out TransactionIndexChecksum checksum))
            {
                checksum = TransactionIndexChecksums.ForFile(_fileSystem, Directory, baseOffset);
                if (!last || activeIsFinal)
                {
                    _txnIndexChecksums[baseOffset] = checksum;
                }
            }

            checksums.Add(checksum);
        }

        WriteTransactionIndexChecksumsIfChanged(checksums, syncDirectory: false);
    }

    private void WriteTransactionIndexChecksumsIfChanged(List<TransactionIndexChecksum> checksums, bool syncDirectory)
    {
        byte[] bytes = TransactionIndexChecksums.Encode(checksums);
        if (_txnIndexChecksumsOnDisk is { } current && current.AsSpan().SequenceEqual(bytes))
        {
            return;
        }

        TransactionIndexChecksums.Write(_fileSystem, Directory, bytes, syncDirectory);
        _txnIndexChecksumsOnDisk = bytes;
    }

    /// <summary>
    /// Visits every batch from the one holding <paramref name="fromOffset"/> to the log end, control
    /// batches included, checking CRCs. Used to rebuild producer state after a crash.
    /// </summary>
    public void ForEachBatch(long fromOffset, BatchVisitor visitor)
    {
        (LogSegment[] segments, int index, long position) = Locate(fromOffset);
        for (int i = index; i < segments.Length; i++)
        {
            LogSegment segment = segments[i];
            using var reader = new BatchFileReader(segment.File, i == index ? position : 0, segment.Size, _config.ReadBufferBytes, _config.MaxBatchBytes);
            while (true)
            {
                BatchReadStatus status = reader.Next(out ReadOnlySpan<byte> bytes);
                if (status == BatchReadStatus.End)
                {
                    break;
                }

                if (status == BatchReadStatus.Invalid)
                {
                    throw new CorruptRecordException($"Invalid record batch ({reader.LastCheck}) in partition {Name}", segment.LogPath, reader.Position);
                }

                var batch = new RecordBatch(bytes);
                if (batch.LastOffset >= fromOffset)
                {
                    visitor(batch, segment);
                }
            }
        }
    }

    /// <summary>Starts a new segment at the log end (when the active one has data).</summary>
    public void Roll()
    {
        lock (_syncLock)
        {
            lock (_lock)
            {
                ThrowIfUnusableUnsynchronized();
                if (_segments[^1].Size > 0)
                {
                    RollUnsynchronized(_logEndOffset);
                }
            }
        }
    }

    /// <summary>
    /// Deletes the segments that end at or before <paramref name="offset"/> (never the active one);
    /// the log start offset moves to the first remaining segment. Used by internal logs that restate
    /// their state and drop the history before it.
    /// </summary>
    public int DeleteSegmentsBefore(long offset)
    {
        long startBefore = LogStartOffset;
        try
        {
            lock (_syncLock)
            {
                lock (_lock)
                {
                    ThrowIfUnusableUnsynchronized();
                    int delete = 0;
                    while (delete < _segments.Length - 1 && _segments[delete].NextOffset <= offset)
                    {
                        delete++;
                    }

                    DeleteLeadingSegmentsUnsynchronized(delete);
                    return delete;
                }
            }
        }
        finally
        {
            NotifyIfLogStartAdvanced(startBefore);
        }
    }

    /// <summary>
    /// Deletes whole segments (never the active one) beyond the retention limits. Returns how many
    /// were deleted; the log start offset moves to the first remaining segment.
    /// </summary>
    public int EnforceRetention()
    {
        if (_config.RetentionBytes is null && _config.RetentionTime is null)
        {
            return 0;
        }

        long startBefore = LogStartOffset;
        try
        {
            lock (_syncLock)
            {
                lock (_lock)
                {
                    ThrowIfUnusableUnsynchronized();
                    long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
                    long total = 0;
                    foreach (LogSegment segment in _segments)
                    {
                        total += segment.Size;
                    }

                    int delete = 0;
                    while (delete < _segments.Length - 1)
                    {
                        LogSegment candidate = _segments[delete];
                        bool tooBig = _config.RetentionBytes is { } limit && total - candidate.Size >= limit;
                        bool tooOld = _config.RetentionTime is { } age && candidate.MaxTimestamp >= 0
                            && now - candidate.MaxTimestamp > (long)age.TotalMilliseconds;
                        if (!tooBig && !tooOld)
                        {
                            break;
                        }

                        total -= candidate.Size;
                        delete++;
                    }

                    DeleteLeadingSegmentsUnsynchronized(delete);
                    return delete;
                }
            }
        }
        finally
        {
            NotifyIfLogStartAdvanced(startBefore);
        }
    }

    /// <summary>
    /// Called (without this log's locks held) after segments were deleted and the log start offset moved:
    /// a waiting consumer's position may now be out of range, and the LSO may have risen with the log start.
    /// </summary>
    public Action? LogStartAdvanced { get; set; }

    // Also after a deletion that failed half-way (the shorter segment list is published before any file is
    // deleted), so waiting consumers never miss a move of the log start.
    private void NotifyIfLogStartAdvanced(long startBefore)
    {
        if (LogStartOffset > startBefore)
        {
            LogStartAdvanced?.Invoke();
        }
    }

    // Deletes the first `count` segments (never the active one). Caller holds both locks. The shorter list
    // is published first, so new readers never pick a deleted segment.
    private void DeleteLeadingSegmentsUnsynchronized(int count)
    {
        if (count == 0)
        {
            return;
        }

        LogSegment[] old = _segments;
        Volatile.Write(ref _segments, old[count..]);
        LogStartMovedLocked?.Invoke(old[count].BaseOffset);
        for (int i = 0; i < count; i++)
        {
            _txnIndexChecksums.Remove(old[i].BaseOffset);
            old[i].Delete();

            // Each deletion is made durable before the next one starts: a file system without a journal
            // (or strict POSIX) may persist unlinks in any order, and a later segment's deletion surviving
            // a power cut while an earlier one's is lost would leave a gap between the segments, which the
            // next open refuses as corruption.
            _fileSystem.SyncDirectory(Directory);
        }
    }

    /// <summary>
    /// Finds the segment holding <paramref name="offset"/> and the file position from which to scan.
    /// </summary>
    internal (LogSegment[] Segments, int SegmentIndex, long Position) Locate(long offset)
    {
        LogSegment[] segments = Volatile.Read(ref _segments);
        int lo = 0, hi = segments.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >>> 1;
            if (segments[mid].BaseOffset <= offset)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return (segments, lo, LookupPosition(segments[lo], offset));
    }

    // An index lookup; when it finds the segment's offset index wrong (LogSegment.LookupPosition), the
    // problem is logged once, and the index files of an immutable segment are deleted at once, so that
    // even after a crash the next open rebuilds them (the active segment's are dropped at close).
    private int LookupPosition(LogSegment segment, long offset)
    {
        int position = segment.LookupPosition(offset);
        if (segment.TakeIndexSuspectReport())
        {
            LogMessages.IndexEntryMismatch(_config.Telemetry.Logger, segment.IndexPath);
            lock (_lock)
            {
                int index = Array.IndexOf(_segments, segment);
                if (!_disposed && index >= 0 && index < _segments.Length - 1) // an immutable segment still in the log
                {
                    try
                    {
                        segment.DeleteIndexFiles();
                    }
                    catch (IOException)
                    {
                        // Best effort: the in-memory fallback keeps reads correct meanwhile.
                    }
                }
            }
        }

        return position;
    }

    /// <summary>Throws <see cref="OffsetOutOfRangeException"/> unless start offset ≤ <paramref name="offset"/> ≤ LEO.</summary>
    public void CheckOffsetInRange(long offset)
    {
        long start = LogStartOffset;
        long end = LogEndOffset;
        if (offset < start || offset > end)
        {
            throw new OffsetOutOfRangeException(Id, offset, start, end);
        }
    }

    /// <summary>
    /// Offset of the first record whose timestamp is at or after <paramref name="timestamp"/>
    /// (below <paramref name="endOffset"/>), or null when there is none.
    /// </summary>
    public long? OffsetForTimestamp(long timestamp, long endOffset)
    {
        while (true)
        {
            LogSegment[] segments = Volatile.Read(ref _segments);
            try
            {
                return OffsetForTimestamp(segments, timestamp, endOffset);
            }
            catch (ObjectDisposedException) when (LogStartOffset > segments[0].BaseOffset)
            {
                // Retention deleted (and closed) a segment being searched: search what is left.
            }
        }
    }

    private long? OffsetForTimestamp(LogSegment[] segments, long timestamp, long endOffset)
    {
        foreach (LogSegment segment in segments)
        {
            if (segment.MaxTimestamp < timestamp || segment.BaseOffset >= endOffset)
            {
                continue;
            }

            long scanFrom = segment.LookupTimestampScanStart(timestamp);
            int position = LookupPosition(segment, scanFrom);
            using var reader = new BatchFileReader(segment.File, position, segment.Size, _config.ReadBufferBytes, _config.MaxBatchBytes);
            while (true)
            {
                BatchReadStatus status = reader.Next(out ReadOnlySpan<byte> bytes);
                if (status == BatchReadStatus.End)
                {
                    break;
                }

                if (status == BatchReadStatus.Invalid)
                {
                    // Going on with the next segment would answer with a later offset: report the damage
                    // as every other read does.
                    throw new CorruptRecordException($"Invalid record batch ({reader.LastCheck}) in partition {Name}", segment.LogPath, reader.Position);
                }

                var batch = new RecordBatch(bytes);
                if (batch.BaseOffset >= endOffset)
                {
                    return null;
                }

                if (batch.LastOffset < scanFrom || batch.MaxTimestamp < timestamp || batch.IsControl)
                {
                    continue;
                }

                foreach (Record record in batch)
                {
                    if (record.Offset >= scanFrom && record.Offset < endOffset && record.Timestamp >= timestamp)
                    {
                        return record.Offset;
                    }
                }
            }
        }

        return null;
    }

    private void ThrowIfUnusableUnsynchronized()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is { } failure)
        {
            throw new LogWriteException($"Partition {Name} stopped accepting writes after an I/O failure; reopen the store to recover it.", failure);
        }
    }

    /// <summary>
    /// Stops the partition after a failed write of data derived from it (it refuses writes, and its
    /// close is not clean, so the next open recovers it). Returns the exception to throw.
    /// </summary>
    public LogWriteException Fail(string operation, Exception e)
    {
        lock (_lock)
        {
            return FailUnsynchronized(operation, e);
        }
    }

    private LogWriteException FailUnsynchronized(string operation, Exception e)
    {
        if (_failure is null)
        {
            LogMessages.PartitionFailed(_config.Telemetry.Logger, Name, operation, e);
        }

        _failure ??= e;
        return new LogWriteException($"The {operation} of partition {Name} failed; the partition accepts no more writes until the store is reopened.", e);
    }

    /// <summary>
    /// Clean close: fsyncs the data and the active segment's indexes. Returns false when the
    /// partition had failed (then the store must not claim a clean shutdown).
    /// </summary>
    public bool Close(TimeSpan timeout)
    {
        // Bounded: a hung fsync must not hang Dispose forever.
        if (!Monitor.TryEnter(_syncLock, timeout))
        {
            return false;
        }

        try
        {
            lock (_lock)
            {
                if (_disposed)
                {
                    return _failure is null;
                }

                bool clean = _failure is null;
                if (clean)
                {
                    try
                    {
                        LogSegment active = _segments[^1];
                        active.TrimPreallocation();
                        long started = Stopwatch.GetTimestamp();
                        active.Flush();
                        ObserveFsync(active, started);
                        active.SyncTransactionIndex();
                        WriteTransactionIndexChecksumsUnsynchronized(_segments, activeIsFinal: false);
                        _fileSystem.SyncDirectory(Directory); // a .txnindex created since the last roll, txnindex.checksums
                        foreach (LogSegment segment in _segments)
                        {
                            if (segment.IndexSuspect)
                            {
                                segment.DeleteIndexFiles(); // rebuilt from the log at the next open
                            }
                        }

                        if (!active.IndexSuspect)
                        {
                            active.PersistIndexes();
                        }

                        AdvanceHighWatermark(_logEndOffset);
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        _ = FailUnsynchronized("close fsync", e);
                        clean = false;
                    }
                }

                _disposed = true;
                foreach (LogSegment segment in _segments)
                {
                    segment.Dispose();
                }

                return clean;
            }
        }
        finally
        {
            Monitor.Exit(_syncLock);
        }
    }

    /// <summary>True once <see cref="Close"/> completed or <see cref="Dispose"/> ran (read without the lock, which a stuck operation may hold).</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>
    /// Closes the segments' file handles without taking this log's locks: for a partition whose close
    /// gave up, once the store's file system is sealed and no file operation runs (nothing can change a
    /// file through them any more; a thread still holding a lock here finds them closed).
    /// </summary>
    public void ReleaseFilesAfterSeal()
    {
        foreach (LogSegment segment in Volatile.Read(ref _segments))
        {
            segment.Dispose();
        }
    }

    /// <summary>Closes without flushing (used when a store fails to open).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (LogSegment segment in _segments)
            {
                segment.Dispose();
            }
        }
    }
}

/// <summary>What recovery did when a store opened.</summary>
public sealed class RecoveryReport
{
    private readonly List<string> _actions = [];

    /// <summary>True when the previous close was clean (no segment needed scanning).</summary>
    public bool CleanShutdown { get; internal set; }

    /// <summary>Segments validated batch by batch.</summary>
    public int ScannedSegments { get; internal set; }

    /// <summary>Bytes of torn tail removed.</summary>
    public long TruncatedBytes { get; internal set; }

    /// <summary>Segments whose indexes were rebuilt.</summary>
    public int RebuiltIndexes { get; internal set; }

    /// <summary>Human-readable list of the actions taken (file, position, bytes).</summary>
    public IReadOnlyList<string> Actions => _actions;

    /// <summary>Where recovery actions are logged as they happen.</summary>
    internal ILogger Logger { get; set; } = NullLogger.Instance;

    internal void Add(string action)
    {
        AddUnlogged(action);
        LogMessages.RecoveryAction(Logger, action);
    }

    internal void TruncatedTail(string file, long position, long bytes)
    {
        AddUnlogged($"{file}: truncated a torn tail of {bytes} bytes at position {position}");
        TruncatedBytes += bytes;
        LogMessages.TornTailTruncated(Logger, file, position, bytes);
    }

    internal void IndexRebuilt(string file)
    {
        AddUnlogged($"{file}: rebuilt missing or corrupt indexes");
        RebuiltIndexes++;
        LogMessages.IndexRebuilt(Logger, file);
    }

    private void AddUnlogged(string action)
    {
        lock (_actions)
        {
            _actions.Add(action);
        }
    }
}
