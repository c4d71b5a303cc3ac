using System.Buffers;
using TxLog.Records;

namespace TxLog.Storage;

/// <summary>
/// Reads consecutive batches of one <c>.log</c> file through a pooled buffer, in large reads
/// (default 1 MiB). Each returned batch has been checked (length, magic, CRC-32C) unless checks are
/// turned off. Used by recovery, index rebuilds, offset and timestamp lookups and readers.
/// System.IO.Pipelines is not used here: a segment read is positional and bounded, and parsing in
/// place over one reusable array avoids the segment-list bookkeeping a Pipe would add per batch.
/// Not thread-safe: one reader per caller.
/// </summary>
internal sealed class BatchFileReader : IDisposable
{
    private readonly IStorageFile _file;
    private readonly int _maxBatchSize;
    private readonly bool _verifyCrc;
    private byte[] _buffer;
    private long _bufferFilePosition;  // file position of _buffer[0]
    private int _bufferStart;          // next unread byte in _buffer
    private int _bufferEnd;            // end of valid bytes in _buffer
    private long _end;                 // stop reading here (logical end of the segment)

    public BatchFileReader(IStorageFile file, long start, long end, int bufferSize, int maxBatchSize, bool verifyCrc = true)
    {
        _file = file;
        _maxBatchSize = maxBatchSize;
        _verifyCrc = verifyCrc;
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(bufferSize, RecordBatchLayout.HeaderSize));
        _bufferFilePosition = start;
        _end = end;
    }

    /// <summary>File position of the next batch.</summary>
    public long Position => _bufferFilePosition + _bufferStart;

    /// <summary>Result of the last failed check (when <see cref="Next"/> returned <see cref="BatchReadStatus.Invalid"/>).</summary>
    public BatchCheck LastCheck { get; private set; }

    /// <summary>The batch last returned by <see cref="Next"/>, valid until the next call.</summary>
    public ReadOnlyMemory<byte> LastBatch { get; private set; }

    /// <summary>Moves the logical end (a growing active segment).</summary>
    public void ExtendEnd(long end) => _end = Math.Max(_end, end);

    /// <summary>
    /// Returns the next batch. <paramref name="batch"/> stays valid until the next call.
    /// On <see cref="BatchReadStatus.Invalid"/>, <see cref="Position"/> is the bad batch's position.
    /// </summary>
    public BatchReadStatus Next(out ReadOnlySpan<byte> batch)
    {
        batch = default;
        long position = Position;
        if (position >= _end)
        {
            return BatchReadStatus.End;
        }

        if (!EnsureBuffered(RecordBatchLayout.HeaderSize))
        {
            LastCheck = BatchCheck.Truncated;
            return BatchReadStatus.Invalid;
        }

        BatchCheck check = RecordBatch.Check(_buffer.AsSpan(_bufferStart, _bufferEnd - _bufferStart), _maxBatchSize, out int size);
        if (check == BatchCheck.Truncated && size > 0)
        {
            if (!EnsureBuffered(size))
            {
                LastCheck = BatchCheck.Truncated;
                return BatchReadStatus.Invalid;
            }

            check = RecordBatch.Check(_buffer.AsSpan(_bufferStart, _bufferEnd - _bufferStart), _maxBatchSize, out size);
        }
        else if (check == BatchCheck.BadCrc && !_verifyCrc)
        {
            check = BatchCheck.Valid;
        }

        if (check != BatchCheck.Valid)
        {
            LastCheck = check;
            return BatchReadStatus.Invalid;
        }

        LastBatch = _buffer.AsMemory(_bufferStart, size);
        batch = LastBatch.Span;
        _bufferStart += size;
        return BatchReadStatus.Batch;
    }

    /// <summary>Skips to a file position (used after an index lookup).</summary>
    public void Seek(long position)
    {
        if (position >= _bufferFilePosition && position <= _bufferFilePosition + _bufferEnd)
        {
            _bufferStart = (int)(position - _bufferFilePosition);
            return;
        }

        _bufferFilePosition = position;
        _bufferStart = 0;
        _bufferEnd = 0;
    }

    // Makes at least `count` bytes available from _bufferStart, reading from the file; false when
    // the logical end comes first.
    private bool EnsureBuffered(int count)
    {
        if (_bufferEnd - _bufferStart >= count)
        {
            return true;
        }

        long position = Position;
        if (_end - position < count)
        {
            // Read what there is (for error reporting) but report too few bytes.
            count = (int)Math.Max(0, _end - position);
            FillFrom(position, count);
            return false;
        }

        FillFrom(position, count);
        return _bufferEnd - _bufferStart >= count;
    }

    private void FillFrom(long position, int count)
    {
        if (count > _buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(count);
        }
        else
        {
            // Keep what is already buffered by moving it to the front.
            int kept = _bufferEnd - _bufferStart;
            if (kept > 0 && _bufferStart > 0)
            {
                Buffer.BlockCopy(_buffer, _bufferStart, _buffer, 0, kept);
            }

            if (kept > 0)
            {
                _bufferFilePosition = position;
                _bufferStart = 0;
                _bufferEnd = kept;
                int want = (int)Math.Min(_buffer.Length - kept, _end - (position + kept));
                if (want > 0)
                {
                    _bufferEnd += _file.Read(position + kept, _buffer.AsSpan(kept, want));
                }

                return;
            }
        }

        _bufferFilePosition = position;
        _bufferStart = 0;
        int toRead = (int)Math.Min(_buffer.Length, _end - position);
        _bufferEnd = toRead > 0 ? _file.Read(position, _buffer.AsSpan(0, toRead)) : 0;
    }

    public void Dispose()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>What <see cref="BatchFileReader.Next"/> found.</summary>
internal enum BatchReadStatus
{
    /// <summary>A valid batch.</summary>
    Batch,

    /// <summary>The logical end was reached exactly at a batch boundary.</summary>
    End,

    /// <summary>The bytes at <see cref="BatchFileReader.Position"/> are not a valid batch.</summary>
    Invalid,
}
