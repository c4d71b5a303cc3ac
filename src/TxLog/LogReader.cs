using TxLog.Consuming;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog;

/// <summary>
/// Reads one partition's records in offset order from a starting offset, up to the high watermark
/// (re-read whenever the reader runs out, so a reader can follow a growing log). Each record's
/// key, value and headers are spans into the reader's buffer, valid until the next call to
/// <see cref="TryRead"/>. Control records (transaction markers) are never returned. A read-committed
/// reader stops at the last stable offset instead and skips records of aborted transactions (the
/// partition's aborted-transaction list, ordered by first offset, marks a producer as aborted from
/// its transaction's first offset until its ABORT marker). Every batch's
/// CRC-32C is checked; a mismatch throws <see cref="CorruptRecordException"/> naming file and position.
/// Not thread-safe: one reader per consumer; any number of readers may run beside the writers.
/// </summary>
public sealed class LogReader : IDisposable
{
    private readonly PartitionLog _log;
    private readonly LogPartition _partition;
    private readonly IsolationLevel _isolation;
    private readonly PriorityQueue<AbortedTransaction, long>? _upcomingAborted; // by first offset
    private readonly HashSet<long>? _abortedProducers;  // producers inside an aborted transaction at the current position
    private long _abortedSeen;                            // entries of the partition's aborted list already queued (absolute position, see GetAborted)
    private LogSegment[] _segments;
    private int _segmentIndex;
    private BatchFileReader? _file;
    private ReadOnlyMemory<byte> _batch;   // current batch; empty when none
    private int _recordPosition;           // next record's position inside _batch
    private int _recordIndex;
    private int _recordCount;
    private long _baseOffset;
    private long _baseTimestamp;
    private long _nextOffset;              // the next offset this reader will return (or skip past)
    private long _expectedBaseOffset;      // base offset the next batch must have; -1 right after a seek into a segment
    private bool _disposed;
    private readonly long _endBound;                      // never read at or beyond this (a cut); long.MaxValue for none

    internal LogReader(LogPartition partition, long offset, IsolationLevel isolation, long endBound = long.MaxValue)
    {
        _endBound = endBound;
        PartitionLog log = partition.Log;
        log.CheckOffsetInRange(offset);
        _partition = partition;
        _log = log;
        _isolation = isolation;
        _nextOffset = offset;
        if (isolation == IsolationLevel.ReadCommitted)
        {
            _upcomingAborted = new PriorityQueue<AbortedTransaction, long>();
            _abortedProducers = new HashSet<long>();

            // Skip aborted transactions that ended before the start (the list is in marker order).
            ReadOnlySpan<AbortedTransaction> aborted = partition.ProducerState.GetAborted(out long dropped).Span;
            int lo = 0, hi = aborted.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (aborted[mid].LastOffset < offset)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            _abortedSeen = dropped + lo;
        }

        (LogSegment[] segments, int index, long position) = log.Locate(offset);
        _segments = segments;
        _segmentIndex = index;
        OpenSegment(position);
    }

    /// <summary>The offset the next returned record will have at the least.</summary>
    public long Position => _nextOffset;

    /// <summary>The isolation level this reader was opened with.</summary>
    public IsolationLevel Isolation => _isolation;

    /// <summary>
    /// Reads the next record below the high watermark. Returns false when the reader has caught up
    /// (call again later to see new records).
    /// </summary>
    public bool TryRead(out Record record)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long end = Math.Min(_endBound, _isolation == IsolationLevel.ReadCommitted ? _partition.LastStableOffset : _log.HighWatermark);

        // Retention may have deleted the records at this reader's position while some of them are still
        // in its buffer. They must not be returned: the LSO is raised to the new log start when an open
        // transaction's first records are deleted, so a read-committed reader would return that open
        // transaction's buffered records. Read after `end` (the log start only grows), so an `end` raised
        // by the new log start is always caught here.
        long logStart = _log.LogStartOffset;
        if (_nextOffset < logStart)
        {
            throw new OffsetOutOfRangeException(_log.Id, _nextOffset, logStart, _log.LogEndOffset);
        }

        while (true)
        {
            if (_recordIndex < _recordCount)
            {
                ReadOnlySpan<byte> batch = _batch.Span;
                int recordStart = _recordPosition;
                RecordDecoder.Decode(batch, ref _recordPosition, _recordIndex, _baseOffset, _baseTimestamp, out record);
                _recordIndex++;
                if (_recordIndex == _recordCount)
                {
                    RecordDecoder.CheckEnd(batch, _recordPosition, _recordCount, _baseOffset);
                }

                if (record.Offset < _nextOffset)
                {
                    continue; // the first batch may start before the requested offset
                }

                if (record.Offset >= end)
                {
                    // Not yet durable: step back to this record and report "caught up".
                    _recordIndex--;
                    _recordPosition = recordStart;
                    record = default;
                    return false;
                }

                _nextOffset = record.Offset + 1;
                return true;
            }

            if (!NextBatch(end))
            {
                record = default;
                return false;
            }
        }
    }

    // Loads the next data batch (skipping control batches); false when caught up with `end`.
    private bool NextBatch(long end)
    {
        while (true)
        {
            if (_nextOffset >= end)
            {
                return false;
            }

            LogSegment segment = _segments[_segmentIndex];
            _file!.ExtendEnd(segment.Size);
            BatchReadStatus status;
            ReadOnlySpan<byte> bytes;
            try
            {
                status = _file.Next(out bytes);
            }
            catch (ObjectDisposedException) when (_log.LogStartOffset > segment.BaseOffset)
            {
                // Retention deleted (and closed) the segment under this reader. Below the new log start
                // that is the documented error. At or above it, every record the deleted segment held is
                // below this reader's position (a reader opened at the log end looks its position up in
                // the active segment without reading it, and that segment may roll and be deleted
                // before the next read): read on from the segment that holds the position.
                if (_log.LogStartOffset > _nextOffset)
                {
                    throw new OffsetOutOfRangeException(_log.Id, _nextOffset, _log.LogStartOffset, _log.LogEndOffset);
                }

                LocateNextOffset();
                continue;
            }

            if (status == BatchReadStatus.End)
            {
                if (!AdvanceSegment())
                {
                    return false;
                }

                continue;
            }

            if (status == BatchReadStatus.Invalid)
            {
                throw new CorruptRecordException($"Invalid record batch ({_file.LastCheck}) in partition {_log.Name}", segment.LogPath, _file.Position);
            }

            var batch = new RecordBatch(bytes);
            CheckInSequence(batch, segment, bytes.Length);
            if (batch.LastOffset < _nextOffset)
            {
                continue;
            }

            if (batch.BaseOffset >= end)
            {
                // Beyond what this reader may see yet: step back so the next call reads it again.
                _file.Seek(_file.Position - bytes.Length);
                _expectedBaseOffset = batch.BaseOffset;
                return false;
            }

            if (batch.IsControl)
            {
                if (_abortedProducers is not null && _abortedProducers.Count > 0 && IsAbortMarker(batch))
                {
                    _abortedProducers.Remove(batch.ProducerId);
                }

                _nextOffset = batch.NextOffset;
                continue;
            }

            if (_abortedProducers is not null && batch.IsTransactional && IsAborted(batch))
            {
                _nextOffset = batch.NextOffset;
                continue;
            }

            _batch = _file.LastBatch;
            _baseOffset = batch.BaseOffset;
            _baseTimestamp = batch.BaseTimestamp;
            _recordCount = batch.RecordCount;
            _recordIndex = 0;
            _recordPosition = RecordBatchLayout.RecordsOffset;
            if (batch.CompressionCodec != 0)
            {
                throw new CorruptRecordException($"Batch at offset {batch.BaseOffset} uses compression codec {batch.CompressionCodec}, which TxLog does not read", segment.LogPath, _file.Position - bytes.Length);
            }

            return true;
        }
    }

    // The base offset is outside the CRC: a damaged one would make the reader skip or misnumber
    // records. Batches follow each other densely; the first one read after an index lookup starts
    // between the segment's base offset and the offset looked up.
    private void CheckInSequence(RecordBatch batch, LogSegment segment, int size)
    {
        long expected = _expectedBaseOffset;
        bool inSequence = expected >= 0
            ? batch.BaseOffset == expected
            : batch.BaseOffset >= segment.BaseOffset && batch.BaseOffset <= _nextOffset;
        if (!inSequence)
        {
            string wanted = expected >= 0 ? expected.ToString(System.Globalization.CultureInfo.InvariantCulture) : $"{segment.BaseOffset} to {_nextOffset}";
            throw new CorruptRecordException($"Record batch with base offset {batch.BaseOffset} where {wanted} was expected in partition {_log.Name}", segment.LogPath, _file!.Position - size);
        }

        _expectedBaseOffset = batch.NextOffset;
    }

    private static bool IsAbortMarker(RecordBatch batch)
    {
        foreach (Record record in batch)
        {
            return ControlRecord.ReadType(record.Key) == ControlRecordType.Abort;
        }

        return false;
    }

    // True when the batch belongs to an aborted transaction of its producer.
    private bool IsAborted(RecordBatch batch)
    {
        ReadOnlySpan<AbortedTransaction> aborted = _partition.ProducerState.GetAborted(out long dropped).Span;
        long unqueued = _abortedSeen - dropped;
        if (unqueued < 0)
        {
            // Retention dropped entries this reader had not queued yet. Their markers are below the log
            // start (which moved before they were dropped), so they cannot cover a batch at or above it;
            // a batch below it was deleted under this reader.
            long logStart = _log.LogStartOffset;
            if (batch.BaseOffset < logStart)
            {
                throw new OffsetOutOfRangeException(_log.Id, _nextOffset, logStart, _log.LogEndOffset);
            }

            unqueued = 0;
        }

        for (int i = (int)unqueued; i < aborted.Length; i++)
        {
            _upcomingAborted!.Enqueue(aborted[i], aborted[i].FirstOffset);
        }

        _abortedSeen = dropped + aborted.Length;

        while (_upcomingAborted!.TryPeek(out AbortedTransaction next, out long first) && first <= batch.BaseOffset)
        {
            _upcomingAborted.Dequeue();
            if (next.LastOffset > batch.BaseOffset)
            {
                _abortedProducers!.Add(next.ProducerId);
            }
        }

        return _abortedProducers!.Contains(batch.ProducerId);
    }

    // Moves to the segment after the current one, refreshing the segment list if the log rolled.
    private bool AdvanceSegment()
    {
        LogSegment current = _segments[_segmentIndex];
        LogSegment[] latest = _log.Segments;
        if (ReferenceEquals(latest[^1], current))
        {
            return false; // at the end of the active segment: caught up
        }

        _nextOffset = Math.Max(_nextOffset, current.NextOffset);
        if (_nextOffset < latest[0].BaseOffset)
        {
            throw new OffsetOutOfRangeException(_log.Id, _nextOffset, latest[0].BaseOffset, _log.LogEndOffset);
        }

        LocateNextOffset();
        return true;
    }

    // Opens the segment holding _nextOffset at the position its index gives.
    private void LocateNextOffset()
    {
        (LogSegment[] segments, int index, long position) = _log.Locate(_nextOffset);
        if (segments[index].BaseOffset > _nextOffset)
        {
            // Retention deleted the segment holding the position meanwhile: reading on from the first
            // remaining segment would skip records silently.
            throw new OffsetOutOfRangeException(_log.Id, _nextOffset, segments[index].BaseOffset, _log.LogEndOffset);
        }

        _segments = segments;
        _segmentIndex = index;
        OpenSegment(position);
    }

    private void OpenSegment(long position)
    {
        _file?.Dispose();
        LogSegment segment = _segments[_segmentIndex];
        _file = new BatchFileReader(segment.File, position, segment.Size, _log.Config.ReadBufferBytes, _log.Config.MaxBatchBytes);
        _expectedBaseOffset = position == 0 ? segment.BaseOffset : -1;
        _batch = default;
        _recordCount = 0;
        _recordIndex = 0;
    }

    /// <summary>Releases the reader's buffer.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _file?.Dispose();
            _file = null;
        }
    }
}
