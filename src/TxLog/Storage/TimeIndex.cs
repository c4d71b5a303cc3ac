using System.Buffers.Binary;

namespace TxLog.Storage;

/// <summary>
/// The sparse time index of one segment (<c>.timeindex</c>), kept in memory and written at roll and
/// clean close:
/// <code>
/// TimeIndex => Entry*   (12 bytes each; timestamps strictly increasing)
/// Entry     => Timestamp int64 (largest record timestamp so far), RelativeOffset int32 (last offset of that batch - base offset)
/// </code>
/// An entry is added next to each offset index entry when the segment's largest timestamp grew, and
/// once more when the segment becomes inactive, so the last entry holds the segment's largest
/// timestamp. One writer: the owning partition, under its lock. <see cref="LookupScanStart"/> may run
/// beside it without the lock (timestamp lookups on the active segment): entries are published before
/// the count that includes them, as in <see cref="OffsetIndex"/>.
/// </summary>
internal sealed class TimeIndex
{
    /// <summary>Size of one entry in bytes.</summary>
    public const int EntrySize = 12;

    private readonly long _baseOffset;
    private readonly int _maxEntries;
    private long[] _timestamps;
    private int[] _relativeOffsets;
    private int _count;

    public TimeIndex(long baseOffset, int maxIndexBytes)
    {
        _baseOffset = baseOffset;
        _maxEntries = Math.Max(1, maxIndexBytes / EntrySize);
        _timestamps = new long[Math.Min(_maxEntries, 64)];
        _relativeOffsets = new int[_timestamps.Length];
    }

    /// <summary>Number of entries.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>True when no more entries fit.</summary>
    public bool IsFull => _count >= _maxEntries;

    /// <summary>The last entry's timestamp, or -1 when empty.</summary>
    public long LastTimestamp
    {
        get
        {
            int count = Volatile.Read(ref _count);
            return count == 0 ? -1 : _timestamps[count - 1];
        }
    }

    /// <summary>Adds an entry if <paramref name="timestamp"/> is larger than the last one.</summary>
    public void MaybeAppend(long timestamp, long offset)
    {
        if (_count > 0 && timestamp <= _timestamps[_count - 1])
        {
            return;
        }

        if (_count == _maxEntries)
        {
            return; // the partition rolls on a full offset or time index before this matters
        }

        int relative = checked((int)(offset - _baseOffset));
        if (_count == _timestamps.Length)
        {
            // Longer copies, each published whole (a reader that sees the new array sees its copied entries).
            int size = Math.Min(_maxEntries, _count * 2);
            long[] timestamps = new long[size];
            int[] relativeOffsets = new int[size];
            Array.Copy(_timestamps, timestamps, _count);
            Array.Copy(_relativeOffsets, relativeOffsets, _count);
            Volatile.Write(ref _timestamps, timestamps);
            Volatile.Write(ref _relativeOffsets, relativeOffsets);
        }

        _timestamps[_count] = timestamp;
        _relativeOffsets[_count] = relative;
        Volatile.Write(ref _count, _count + 1); // published after the entry (lock-free readers, see LookupScanStart)
    }

    /// <summary>
    /// The offset from which to scan for the first record with a timestamp at or above
    /// <paramref name="timestamp"/>: the offset after the last entry whose timestamp is below it
    /// (every record up to that entry's offset is older), or the base offset.
    /// </summary>
    public long LookupScanStart(long timestamp)
    {
        // Readers of the active segment run beside MaybeAppend: read the count first (published after its
        // entries), then the arrays (a resize only ever replaces them with longer copies), once each.
        int count = Volatile.Read(ref _count);
        long[] timestamps = Volatile.Read(ref _timestamps);
        int[] relativeOffsets = Volatile.Read(ref _relativeOffsets);
        count = Math.Min(count, Math.Min(timestamps.Length, relativeOffsets.Length));
        int lo = 0, hi = count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (timestamps[mid] < timestamp)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return found < 0 ? _baseOffset : _baseOffset + relativeOffsets[found] + 1;
    }

    /// <summary>Drops entries for offsets at or beyond <paramref name="offset"/>.</summary>
    public void TruncateToOffset(long offset)
    {
        int count = _count;
        while (count > 0 && _baseOffset + _relativeOffsets[count - 1] >= offset)
        {
            count--;
        }

        Volatile.Write(ref _count, count);
    }

    /// <summary>Writes the whole index to its file and fsyncs it.</summary>
    public void WriteTo(IFileSystem fileSystem, string path)
    {
        byte[] bytes = new byte[(long)_count * EntrySize];
        for (int i = 0; i < _count; i++)
        {
            BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(i * EntrySize), _timestamps[i]);
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(i * EntrySize + 8), _relativeOffsets[i]);
        }

        IndexFiles.WriteWhole(fileSystem, path, bytes);
    }

    /// <summary>Loads and validates a time index file; throws <see cref="CorruptIndexException"/> when malformed.</summary>
    public static TimeIndex Load(IFileSystem fileSystem, string path, long baseOffset, int maxIndexBytes, long nextOffset)
    {
        byte[] bytes = IndexFiles.ReadWhole(fileSystem, path);
        if (bytes.Length % EntrySize != 0)
        {
            throw new CorruptIndexException($"Time index size {bytes.Length} is not a multiple of {EntrySize}", path);
        }

        var index = new TimeIndex(baseOffset, Math.Max(maxIndexBytes, bytes.Length));
        for (int i = 0; i < bytes.Length; i += EntrySize)
        {
            long timestamp = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(i));
            int relative = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i + 8));
            if (relative < 0 || baseOffset + relative >= nextOffset
                || (index._count > 0 && (timestamp <= index._timestamps[index._count - 1] || relative < index._relativeOffsets[index._count - 1])))
            {
                throw new CorruptIndexException($"Time index entry {i / EntrySize} ({timestamp}, {relative}) is out of order or beyond the log", path);
            }

            index.MaybeAppend(timestamp, baseOffset + relative);
        }

        return index;
    }
}
