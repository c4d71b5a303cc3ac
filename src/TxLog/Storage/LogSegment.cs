using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using TxLog.Records;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Storage;

/// <summary>
/// One segment of a partition: <c>{baseOffset:D20}.log</c> holding consecutive RecordBatch v2
/// batches, plus its sparse <c>.index</c> and <c>.timeindex</c>. Only the partition's last segment
/// is written; older ones are immutable until retention deletes them.
/// Thread-safety: appends, truncation and index persistence are serialised by the owning
/// <see cref="PartitionLog"/>'s lock. Reads of bytes below <see cref="Size"/> may run concurrently
/// with appends (positional reads of already written bytes).
/// </summary>
internal sealed class LogSegment : IDisposable
{
    private readonly IFileSystem _fileSystem;
    private readonly LogConfig _config;
    private readonly IStorageFile _log;
    private OffsetIndex _offsetIndex;
    private TimeIndex _timeIndex;
    private long _size;                 // logical size: bytes of whole batches
    private int _bytesSinceIndexEntry;  // bytes appended since the last offset index entry
    private bool _indexesDirty;         // in-memory indexes differ from their files
    private long _allocatedEnd;         // file bytes written so far: data, then preallocated zeros

    /// <summary>Zeros written ahead of the data in pieces of this size.</summary>
    public const int PreallocationPieceBytes = 1 << 20;

    private static readonly byte[] Zeros = new byte[PreallocationPieceBytes];

    private LogSegment(IFileSystem fileSystem, string directory, long baseOffset, LogConfig config, IStorageFile log)
    {
        _fileSystem = fileSystem;
        _config = config;
        BaseOffset = baseOffset;
        LogPath = Path.Combine(directory, FileName(baseOffset, ".log"));
        IndexPath = Path.Combine(directory, FileName(baseOffset, ".index"));
        TimeIndexPath = Path.Combine(directory, FileName(baseOffset, ".timeindex"));
        _log = log;
        _offsetIndex = new OffsetIndex(baseOffset, config.MaxIndexBytes);
        _timeIndex = new TimeIndex(baseOffset, config.MaxIndexBytes);
        NextOffset = baseOffset;
        MaxTimestamp = -1;
        FirstBatchTimestamp = -1;
    }

    /// <summary>Offset of the segment's first record (its file name).</summary>
    public long BaseOffset { get; }

    /// <summary>Offset after the segment's last record.</summary>
    public long NextOffset { get; private set; }

    /// <summary>Logical size in bytes (whole batches only).</summary>
    public long Size => Volatile.Read(ref _size);

    /// <summary>Largest record timestamp in the segment, or -1 when empty.</summary>
    public long MaxTimestamp { get; private set; }

    /// <summary>Max timestamp of the first batch: the age used for rolling by time, or -1.</summary>
    public long FirstBatchTimestamp { get; private set; }

    /// <summary>Path of the <c>.log</c> file.</summary>
    public string LogPath { get; }

    /// <summary>Path of the <c>.index</c> file.</summary>
    public string IndexPath { get; }

    /// <summary>Path of the <c>.timeindex</c> file.</summary>
    public string TimeIndexPath { get; }

    /// <summary>The log file (for readers).</summary>
    internal IStorageFile File => _log;

    /// <summary>True when an index cannot take another entry (the partition then rolls).</summary>
    public bool IndexIsFull => _offsetIndex.IsFull || _timeIndex.IsFull;

    /// <summary>Formats a segment file name: the base offset as 20 digits plus the extension.</summary>
    public static string FileName(long baseOffset, string extension) =>
        baseOffset.ToString("D20", CultureInfo.InvariantCulture) + extension;

    /// <summary>Creates a new, empty segment.</summary>
    public static LogSegment Create(IFileSystem fileSystem, string directory, long baseOffset, LogConfig config)
    {
        string path = Path.Combine(directory, FileName(baseOffset, ".log"));
        IStorageFile log = fileSystem.OpenFile(path, FileOpenMode.OpenOrCreate);
        log.SetLength(0);
        fileSystem.DeleteFile(Path.Combine(directory, FileName(baseOffset, ".index")));
        fileSystem.DeleteFile(Path.Combine(directory, FileName(baseOffset, ".timeindex")));

        // A leftover .txnindex at this base offset (of a segment that did not survive) must not be
        // appended to: its entries would then be recorded in txnindex.checksums as this segment's.
        fileSystem.DeleteFile(Path.Combine(directory, FileName(baseOffset, ".txnindex")));
        return new LogSegment(fileSystem, directory, baseOffset, config, log);
    }

    /// <summary>
    /// Opens a segment trusted to be whole (closed cleanly, or an older segment that was fsynced at
    /// roll): size from the file, indexes from their files. Missing or corrupt indexes are rebuilt by a
    /// scan (which then also validates the segment).
    /// </summary>
    public static LogSegment OpenTrusted(IFileSystem fileSystem, string directory, long baseOffset, LogConfig config, out bool rebuiltIndexes)
    {
        string path = Path.Combine(directory, FileName(baseOffset, ".log"));
        IStorageFile log = fileSystem.OpenFile(path, FileOpenMode.OpenExisting);
        var segment = new LogSegment(fileSystem, directory, baseOffset, config, log);
        try
        {
            segment._size = log.Length;
            segment._allocatedEnd = segment._size;
            rebuiltIndexes = !segment.TryLoadIndexes();
            if (rebuiltIndexes)
            {
                segment.Rebuild(truncateTornTail: false);
            }

            return segment;
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens a segment that may end in a torn write (the last segment after a crash): every batch is
    /// validated, indexes are rebuilt, and a torn or garbage tail is truncated. Returns the number of
    /// bytes truncated in <paramref name="truncatedBytes"/>.
    /// </summary>
    public static LogSegment OpenRecovering(IFileSystem fileSystem, string directory, long baseOffset, LogConfig config, out long truncatedBytes)
    {
        string path = Path.Combine(directory, FileName(baseOffset, ".log"));
        IStorageFile log = fileSystem.OpenFile(path, FileOpenMode.OpenExisting);
        var segment = new LogSegment(fileSystem, directory, baseOffset, config, log);
        try
        {
            segment._size = log.Length;
            segment._allocatedEnd = segment._size;
            truncatedBytes = segment.Rebuild(truncateTornTail: true);
            return segment;
        }
        catch
        {
            segment.Dispose();
            throw;
        }
    }

    private bool TryLoadIndexes()
    {
        if (!_fileSystem.FileExists(IndexPath) || !_fileSystem.FileExists(TimeIndexPath))
        {
            // An empty segment has nothing to index (its index files are never written).
            return _size == 0;
        }

        try
        {
            _offsetIndex = OffsetIndex.Load(_fileSystem, IndexPath, BaseOffset, _config.MaxIndexBytes, _size);

            // The tail after the last index entry is scanned to find the next offset; it is at most
            // about one index interval plus one batch. Anything wrong in it (a batch that does not
            // check, an offset out of sequence, an index entry naming another batch) sends the
            // segment to a full rebuild, which validates every batch and throws a
            // CorruptRecordException naming the bad one if the log itself is damaged: a wrong base
            // offset here would otherwise become a wrong log end offset.
            long position = _offsetIndex.LastPosition;
            using var reader = new BatchFileReader(_log, position, _size, _config.ReadBufferBytes, _config.MaxBatchBytes);
            long next = BaseOffset;
            long maxTimestamp = -1;
            bool first = true;
            while (true)
            {
                BatchReadStatus status = reader.Next(out ReadOnlySpan<byte> bytes);
                if (status == BatchReadStatus.End)
                {
                    break;
                }

                if (status == BatchReadStatus.Invalid)
                {
                    return false;
                }

                var batch = new RecordBatch(bytes);
                bool inSequence = first
                    ? (_offsetIndex.Count > 0 ? batch.LastOffset == _offsetIndex.LastOffset : batch.BaseOffset == BaseOffset)
                    : batch.BaseOffset == next;
                if (!inSequence || batch.PartitionLeaderEpoch != L.NoPartitionLeaderEpoch)
                {
                    return false;
                }

                first = false;
                next = batch.NextOffset;
                maxTimestamp = Math.Max(maxTimestamp, batch.MaxTimestamp);
            }

            NextOffset = next;
            _timeIndex = TimeIndex.Load(_fileSystem, TimeIndexPath, BaseOffset, _config.MaxIndexBytes, Math.Max(next, BaseOffset + 1));
            MaxTimestamp = Math.Max(maxTimestamp, _timeIndex.LastTimestamp);
            FirstBatchTimestamp = ReadFirstBatchMaxTimestamp();
            _bytesSinceIndexEntry = (int)Math.Min(int.MaxValue, _size - _offsetIndex.LastPosition);
            return true;
        }
        catch (CorruptIndexException)
        {
            _offsetIndex = new OffsetIndex(BaseOffset, _config.MaxIndexBytes);
            _timeIndex = new TimeIndex(BaseOffset, _config.MaxIndexBytes);
            return false;
        }
    }

    private long ReadFirstBatchMaxTimestamp()
    {
        if (_size < L.HeaderSize)
        {
            return -1;
        }

        Span<byte> header = stackalloc byte[L.HeaderSize];
        _log.Read(0, header);
        return BinaryPrimitives.ReadInt64BigEndian(header.Slice(L.MaxTimestampOffset));
    }

    // Scans the whole segment, rebuilding both indexes. With truncateTornTail, an invalid tail is cut
    // off; an invalid batch followed by a valid one is corruption inside the data and throws.
    private long Rebuild(bool truncateTornTail)
    {
        _offsetIndex = new OffsetIndex(BaseOffset, _config.MaxIndexBytes);
        _timeIndex = new TimeIndex(BaseOffset, _config.MaxIndexBytes);
        long fileSize = _size;
        long expectedOffset = BaseOffset;
        long maxTimestamp = -1;
        long firstBatchTimestamp = -1;
        _bytesSinceIndexEntry = 0;
        using var reader = new BatchFileReader(_log, 0, fileSize, _config.ReadBufferBytes, _config.MaxBatchBytes);
        while (true)
        {
            long position = reader.Position;
            BatchReadStatus status = reader.Next(out ReadOnlySpan<byte> bytes);
            if (status == BatchReadStatus.End)
            {
                break;
            }

            string? problem = null;
            if (status == BatchReadStatus.Invalid)
            {
                problem = reader.LastCheck.ToString();
            }
            else
            {
                var batch = new RecordBatch(bytes);

                // Fields outside the CRC are checked against what TxLog writes.
                if (batch.BaseOffset != expectedOffset)
                {
                    problem = $"base offset {batch.BaseOffset} where {expectedOffset} was expected";
                }
                else if (batch.PartitionLeaderEpoch != L.NoPartitionLeaderEpoch)
                {
                    problem = $"partition leader epoch {batch.PartitionLeaderEpoch}";
                }
                else
                {
                    try
                    {
                        batch.ValidateRecords();
                    }
                    catch (CorruptRecordException e)
                    {
                        problem = e.Message;
                    }
                }

                if (problem is null)
                {
                    if (firstBatchTimestamp < 0)
                    {
                        firstBatchTimestamp = batch.MaxTimestamp;
                    }

                    maxTimestamp = Math.Max(maxTimestamp, batch.MaxTimestamp);
                    IndexBatch(position, bytes.Length, batch.LastOffset, maxTimestamp);
                    expectedOffset = batch.NextOffset;
                    continue;
                }
            }

            // A whole batch with a valid CRC that is only larger than this store's MaxBatchBytes was
            // written under a larger limit: it is data, not a torn tail. Never cut it; say what to do.
            if (reader.LastCheck == BatchCheck.BadLength && IsValidOversizedBatch(position, out int oversize))
            {
                throw new BatchTooLargeForConfigurationException(LogPath, position, oversize, _config.MaxBatchBytes);
            }

            // An invalid batch. It is a torn tail unless a valid batch follows it.
            if (!truncateTornTail || ValidBatchFollows(position, expectedOffset))
            {
                throw new CorruptRecordException($"Corrupt record batch ({problem}) inside the data of partition segment", LogPath, position);
            }

            _size = position;
            _allocatedEnd = position;
            _log.SetLength(position);
            _log.Sync();
            break;
        }

        NextOffset = expectedOffset;
        MaxTimestamp = maxTimestamp;
        FirstBatchTimestamp = firstBatchTimestamp;
        _indexesDirty = true;
        return fileSize - _size;
    }

    // True when the bytes at `position` are a complete batch with a valid CRC whose size exceeds the
    // configured MaxBatchBytes (it fits in the file). `size` is its size with the log overhead.
    private bool IsValidOversizedBatch(long position, out int size)
    {
        size = 0;
        Span<byte> header = stackalloc byte[L.HeaderSize];
        if (position + L.HeaderSize > _size || _log.Read(position, header) < header.Length || header[L.MagicOffset] != L.CurrentMagic)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(header.Slice(L.LengthOffset));
        if (length < L.MinBatchLength || position + L.LogOverhead + (long)length > _size || length > int.MaxValue - L.LogOverhead)
        {
            return false;
        }

        size = length + L.LogOverhead;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            Span<byte> batch = buffer.AsSpan(0, size);
            return _log.Read(position, batch) == size && RecordBatch.Check(batch, size, out _) == BatchCheck.Valid;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // True when a valid batch with an offset at or after `expectedOffset` starts after the bad batch
    // at `position`: then the damage is in the middle of the data, not a torn write. The bad batch's
    // own length field may be the damaged part, so it is not followed: every position up to one
    // maximum batch size on is tried (the next batch starts there at the latest). That costs one read
    // of at most two maximum batch sizes and a scan of it, only when recovery meets a bad batch. A
    // candidate must be a whole batch with a valid CRC and TxLog's partition leader epoch (-1).
    // Accepted compromise: a torn batch whose record values hold a complete TxLog batch with a later
    // base offset is taken for corruption (the store refuses to open rather than guess).
    private bool ValidBatchFollows(long position, long expectedOffset)
    {
        int windowSize = (int)Math.Min(_size - position, 2L * _config.MaxBatchBytes);
        if (windowSize < 2 * L.HeaderSize)
        {
            return false; // no room for the bad batch and another one
        }

        byte[] buffer = ArrayPool<byte>.Shared.Rent(windowSize);
        try
        {
            ReadOnlySpan<byte> window = buffer.AsSpan(0, _log.Read(position, buffer.AsSpan(0, windowSize)));
            int lastStart = Math.Min(window.Length - L.HeaderSize, _config.MaxBatchBytes);
            for (int start = L.HeaderSize; start <= lastStart; start++)
            {
                ReadOnlySpan<byte> candidate = window.Slice(start);
                if (candidate[L.MagicOffset] != L.CurrentMagic
                    || BinaryPrimitives.ReadInt32BigEndian(candidate.Slice(L.PartitionLeaderEpochOffset)) != L.NoPartitionLeaderEpoch
                    || RecordBatch.Check(candidate, _config.MaxBatchBytes, out _) != BatchCheck.Valid)
                {
                    continue;
                }

                if (new RecordBatch(candidate).BaseOffset >= expectedOffset)
                {
                    return true;
                }
            }

            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void IndexBatch(long position, int batchSize, long lastOffset, long maxTimestampSoFar)
    {
        if (_bytesSinceIndexEntry >= _config.IndexIntervalBytes)
        {
            _offsetIndex.Append(lastOffset, checked((int)position));
            _timeIndex.MaybeAppend(maxTimestampSoFar, lastOffset);
            _bytesSinceIndexEntry = 0;
        }

        _bytesSinceIndexEntry += batchSize;
    }

    /// <summary>
    /// Appends a complete batch (offsets already assigned). The caller holds the partition lock and
    /// has checked that the batch fits (see <see cref="PartitionLog"/>'s roll rules).
    /// </summary>
    public void Append(ReadOnlySpan<byte> batch, long lastOffset, long maxTimestamp)
    {
        long position = _size;
        _log.Write(position, batch);
        if (FirstBatchTimestamp < 0)
        {
            FirstBatchTimestamp = maxTimestamp;
        }

        MaxTimestamp = Math.Max(MaxTimestamp, maxTimestamp);
        IndexBatch(position, batch.Length, lastOffset, MaxTimestamp);
        NextOffset = lastOffset + 1;
        _indexesDirty = true;
        _allocatedEnd = Math.Max(_allocatedEnd, position + batch.Length);
        Volatile.Write(ref _size, position + batch.Length);
    }

    /// <summary>Bytes of the file written so far (data plus preallocated zeros).</summary>
    public long AllocatedEnd => _allocatedEnd;

    /// <summary>
    /// Writes one piece of zeros after the data or after earlier zeros (to the page cache; the caller
    /// fsyncs it outside the partition lock). Caller holds the partition lock, so no append races it.
    /// </summary>
    public void PreallocatePieceUnsynchronized()
    {
        long start = Math.Max(_allocatedEnd, _size);
        _zeroFile ??= _fileSystem.OpenFile(LogPath, FileOpenMode.OpenExisting);
        _zeroFile.Write(start, Zeros);
        _allocatedEnd = start + Zeros.Length;
    }

    // A second handle for the zeros: fsyncing through it never stalls on (or takes) the partition's
    // sync lock, and Linux reports a writeback error to every open file description of the file
    // (errseq), so an error it meets is still reported to the next commit fsync on the main handle.
    private IStorageFile? _zeroFile;

    /// <summary>Makes the preallocated zeros durable through their own handle.</summary>
    public void FlushZeros() => _zeroFile?.Sync();

    /// <summary>Cuts preallocated zeros off the file so its length is the data's (before roll and close).</summary>
    public void TrimPreallocation()
    {
        if (_allocatedEnd > _size || _log.Length > _size)
        {
            _log.SetLength(_size);
            _allocatedEnd = _size;
        }
    }

    /// <summary>Makes the segment's written bytes durable (fdatasync).</summary>
    public void Flush() => _log.Sync();

    /// <summary>
    /// File position from which to scan for <paramref name="offset"/> (an index lookup); the scan
    /// then skips batches that end before it.
    /// </summary>
    /// <remarks>
    /// The entry is checked against the log (the batch at its position must be a batch whose last
    /// offset is the indexed one): indexes of older segments are trusted at open after cheap checks
    /// only, and an entry that is well formed but wrong must not make healthy data unreadable. A wrong
    /// entry makes the lookup fall back to the segment's start (correct, slower) and marks the index
    /// <see cref="IndexSuspect"/>.
    /// </remarks>
    public int LookupPosition(long offset)
    {
        int position = _offsetIndex.Lookup(offset, out long entryOffset);
        if (entryOffset < 0 || BatchAtEndsWith(position, entryOffset))
        {
            return position;
        }

        IndexSuspect = true;
        return 0;
    }

    /// <summary>True once a lookup found an offset index entry that does not match the log.</summary>
    public bool IndexSuspect
    {
        get => Volatile.Read(ref _indexSuspect) != 0;
        private set => Volatile.Write(ref _indexSuspect, value ? 1 : 0);
    }

    private int _indexSuspect;
    private int _indexSuspectReported;

    /// <summary>True the first time it is called after the index became suspect (to report it once).</summary>
    public bool TakeIndexSuspectReport() => IndexSuspect && Interlocked.Exchange(ref _indexSuspectReported, 1) == 0;

    /// <summary>
    /// fsyncs the segment's <c>.txnindex</c>, if it has one. Its entries are appended to the page cache
    /// as ABORT markers land; a rolled segment's are trusted at the next open when
    /// <c>txnindex.checksums</c> vouches for them (only then is the log not read), so they must be
    /// durable before the roll records their checksum, and the active segment's before a clean close
    /// records its checksum.
    /// </summary>
    public void SyncTransactionIndex()
    {
        string path = Path.ChangeExtension(LogPath, ".txnindex");
        if (!_fileSystem.FileExists(path))
        {
            return;
        }

        using IStorageFile file = _fileSystem.OpenFile(path, FileOpenMode.OpenExisting);
        file.Sync();
    }

    /// <summary>Deletes the index files (derived data), so that the next open rebuilds them from the log.</summary>
    public void DeleteIndexFiles()
    {
        _fileSystem.DeleteFile(IndexPath);
        _fileSystem.DeleteFile(TimeIndexPath);
    }

    // Whether the bytes at `position` start a batch whose last offset is `lastOffset`.
    private bool BatchAtEndsWith(int position, long lastOffset)
    {
        Span<byte> header = stackalloc byte[L.HeaderSize];
        try
        {
            if (position < 0 || position + L.HeaderSize > Size || _log.Read(position, header) < header.Length)
            {
                return false;
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            return true; // cannot check: not evidence against the index (the read that follows reports the error)
        }

        long baseOffset = BinaryPrimitives.ReadInt64BigEndian(header);
        int lastDelta = BinaryPrimitives.ReadInt32BigEndian(header.Slice(L.LastOffsetDeltaOffset));
        return header[L.MagicOffset] == L.CurrentMagic && baseOffset + lastDelta == lastOffset;
    }

    /// <summary>Offset from which to scan for the first record at or after <paramref name="timestamp"/>.</summary>
    public long LookupTimestampScanStart(long timestamp) => _timeIndex.LookupScanStart(timestamp);

    /// <summary>
    /// Writes the indexes (adding a final time index entry for the largest timestamp) and fsyncs
    /// them. Called when the segment stops being active and at clean close.
    /// </summary>
    public void PersistIndexes()
    {
        if (!_indexesDirty)
        {
            return;
        }

        if (MaxTimestamp >= 0 && NextOffset > BaseOffset)
        {
            _timeIndex.MaybeAppend(MaxTimestamp, NextOffset - 1);
        }

        _offsetIndex.WriteTo(_fileSystem, IndexPath);
        _timeIndex.WriteTo(_fileSystem, TimeIndexPath);
        _indexesDirty = false;
    }

    /// <summary>Closes the files and deletes the segment's files.</summary>
    public void Delete()
    {
        _zeroFile?.Dispose();
        _log.Dispose();
        _fileSystem.DeleteFile(LogPath);
        _fileSystem.DeleteFile(IndexPath);
        _fileSystem.DeleteFile(TimeIndexPath);
        _fileSystem.DeleteFile(Path.ChangeExtension(LogPath, ".txnindex"));
    }

    /// <summary>Closes the log file.</summary>
    public void Dispose()
    {
        _zeroFile?.Dispose();
        _log.Dispose();
    }
}
