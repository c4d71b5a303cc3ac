using System.Buffers;
using System.Buffers.Binary;
using TxLog.Records;
using TxLog.Storage;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Inspection;

/// <summary>What <see cref="SegmentScanner.Next"/> found at its position.</summary>
internal enum ScanItemKind
{
    /// <summary>A whole batch: its CRC is valid (<see cref="BatchCheck.Valid"/>) or not (<see cref="BatchCheck.BadCrc"/>).</summary>
    Batch,

    /// <summary>The end of the file, at a batch boundary.</summary>
    End,

    /// <summary>Only zeros remain (preallocated space after the data of an active segment).</summary>
    ZeroTail,

    /// <summary>Bytes that are not a whole batch and no valid batch follows them (a torn write).</summary>
    TornTail,

    /// <summary>Bytes that are not a batch, followed by a valid batch (corruption inside the data).</summary>
    InvalidRegion,
}

/// <summary>One step of a scan: a batch, or a region of bytes that is not one.</summary>
/// <param name="Kind">What was found.</param>
/// <param name="Position">File position of the batch or region.</param>
/// <param name="Length">Its length in bytes.</param>
/// <param name="Check">For a batch: Valid or BadCrc; for a bad region: why the bytes are not a batch.</param>
/// <param name="Bytes">The batch's bytes (valid until the next call), or empty.</param>
internal readonly record struct ScanItem(ScanItemKind Kind, long Position, long Length, BatchCheck Check, ReadOnlyMemory<byte> Bytes);

/// <summary>
/// Reads the batches of one <c>.log</c> file read-only, coping with damage: a batch whose CRC does
/// not match is returned (flagged) when its length is plausible; bytes that are not a batch are
/// classified as preallocated zeros, a torn tail, or an invalid region after which the scan resumes
/// at the next valid batch (searched within two maximum batch sizes, as recovery does). Never writes.
/// Not thread-safe.
/// </summary>
internal sealed class SegmentScanner : IDisposable
{
    private const int ChunkSize = 1 << 20;

    private readonly IStorageFile _file;
    private readonly int _maxBatchBytes;
    private byte[] _buffer;
    private long _bufferPosition;  // file position of _buffer[0]
    private int _bufferLength;     // valid bytes in _buffer
    private long _position;
    private bool _done;

    /// <summary>Opens <paramref name="path"/> read-only and starts at <paramref name="startPosition"/>.</summary>
    public SegmentScanner(string path, int maxBatchBytes, long startPosition = 0)
    {
        _file = OsFileSystem.Instance.OpenFile(path, FileOpenMode.ReadOnly);
        _maxBatchBytes = maxBatchBytes;
        Length = _file.Length;
        _buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        _position = Math.Clamp(startPosition, 0, Length);
    }

    /// <summary>The file's length when it was opened (the scan stops there).</summary>
    public long Length { get; }

    /// <summary>Position of the next item.</summary>
    public long Position => _position;

    /// <summary>
    /// When set, a batch found while resynchronising after bad bytes must have at least this base
    /// offset (a stale copy of an earlier batch is not taken for the continuation).
    /// </summary>
    public long? ExpectedNextOffset { get; set; }

    /// <summary>Reads the next item; after <see cref="ScanItemKind.End"/>, <see cref="ScanItemKind.ZeroTail"/> or <see cref="ScanItemKind.TornTail"/> only End follows.</summary>
    public ScanItem Next()
    {
        if (_done || _position >= Length)
        {
            _done = true;
            return new ScanItem(ScanItemKind.End, _position, 0, BatchCheck.Valid, default);
        }

        BatchCheck check = CheckAtPosition(out int size);
        if (check != BatchCheck.Valid && _bufferLength > 0)
        {
            // The buffer may hold these bytes as they were before a store that has the file open
            // finished writing them (a partial batch, or zeros): judge them on a fresh read, or a
            // live scan reports a batch being written as damage followed by a valid batch.
            _bufferLength = 0;
            check = CheckAtPosition(out size);
        }

        if (check is BatchCheck.Valid or BatchCheck.BadCrc)
        {
            var item = new ScanItem(ScanItemKind.Batch, _position, size, check, WindowMemory(_position, size));
            _position += size;
            if (check == BatchCheck.Valid)
            {
                ExpectedNextOffset = new RecordBatch(item.Bytes.Span).NextOffset;
            }

            return item;
        }

        return Invalid(check);
    }

    private BatchCheck CheckAtPosition(out int size)
    {
        long remaining = Length - _position;
        ReadOnlySpan<byte> head = Window(_position, (int)Math.Min(remaining, L.HeaderSize));
        BatchCheck check = RecordBatch.Check(head, _maxBatchBytes, out size);
        if (check == BatchCheck.Truncated && size > 0 && size <= remaining)
        {
            check = RecordBatch.Check(Window(_position, size), _maxBatchBytes, out size);
        }

        return check;
    }

    private ScanItem Invalid(BatchCheck check)
    {
        long start = _position;
        if (ZerosFrom(start))
        {
            _done = true;
            return new ScanItem(ScanItemKind.ZeroTail, start, Length - start, check, default);
        }

        if (FindNextBatch(start) is { } next)
        {
            _position = next;
            return new ScanItem(ScanItemKind.InvalidRegion, start, next - start, check, default);
        }

        _done = true;
        return new ScanItem(ScanItemKind.TornTail, start, Length - start, check, default);
    }

    private bool ZerosFrom(long position)
    {
        while (position < Length)
        {
            int count = (int)Math.Min(ChunkSize, Length - position);
            ReadOnlySpan<byte> span = Window(position, count);
            if (span.IsEmpty || span.ContainsAnyExcept((byte)0))
            {
                return false;
            }

            position += span.Length;
        }

        return true;
    }

    // The next position after `start` (within one maximum batch) where a whole batch with a valid
    // CRC and TxLog's partition leader epoch starts, or null.
    private long? FindNextBatch(long start)
    {
        long windowLength = Math.Min(Length - start, 2L * _maxBatchBytes + L.HeaderSize);
        if (windowLength < L.HeaderSize + 1)
        {
            return null;
        }

        byte[] window = ArrayPool<byte>.Shared.Rent((int)windowLength);
        try
        {
            int read = _file.Read(start, window.AsSpan(0, (int)windowLength));
            ReadOnlySpan<byte> span = window.AsSpan(0, read);
            int last = Math.Min(span.Length - L.HeaderSize, _maxBatchBytes);
            for (int offset = 1; offset <= last; offset++)
            {
                ReadOnlySpan<byte> candidate = span.Slice(offset);
                if (candidate[L.MagicOffset] != L.CurrentMagic
                    || BinaryPrimitives.ReadInt32BigEndian(candidate.Slice(L.PartitionLeaderEpochOffset)) != L.NoPartitionLeaderEpoch
                    || RecordBatch.Check(candidate, _maxBatchBytes, out _) != BatchCheck.Valid)
                {
                    continue;
                }

                if (ExpectedNextOffset is { } expected && new RecordBatch(candidate).BaseOffset < expected)
                {
                    continue;
                }

                return start + offset;
            }

            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(window);
        }
    }

    private ReadOnlySpan<byte> Window(long position, int count) => WindowMemory(position, count).Span;

    // Bytes [position, position + count) (fewer at the end of the file), valid until the next read.
    private ReadOnlyMemory<byte> WindowMemory(long position, int count)
    {
        if (position >= _bufferPosition && position + count <= _bufferPosition + _bufferLength)
        {
            return _buffer.AsMemory((int)(position - _bufferPosition), count);
        }

        if (count > _buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(count);
        }

        int want = (int)Math.Min(_buffer.Length, Length - position);
        _bufferPosition = position;
        _bufferLength = want > 0 ? _file.Read(position, _buffer.AsSpan(0, want)) : 0;
        return _buffer.AsMemory(0, Math.Min(count, _bufferLength));
    }

    /// <summary>Closes the file.</summary>
    public void Dispose()
    {
        _file.Dispose();
        byte[] buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
