using System.Buffers.Binary;

namespace TxLog.Storage;

/// <summary>
/// The sparse offset index of one segment (<c>.index</c>), kept in memory and written to its file
/// when the segment stops being active and at clean close:
/// <code>
/// OffsetIndex => Entry*   (8 bytes each, ascending)
/// Entry       => RelativeOffset int32 (batch's last offset - segment base offset), Position int32 (batch start in .log)
/// </code>
/// One entry per ~<c>IndexIntervalBytes</c> of log. After a crash the active segment's index is
/// rebuilt from the log, so it never needs to be fsynced on the commit path. Not thread-safe: the
/// owning partition serialises writers; readers use <see cref="Lookup(long)"/> under the same lock or a snapshot.
/// </summary>
internal sealed class OffsetIndex
{
    /// <summary>Size of one entry in bytes.</summary>
    public const int EntrySize = 8;

    private readonly long _baseOffset;
    private readonly int _maxEntries;   // the index is full at this count (the segment then rolls)
    private int[] _relativeOffsets;
    private int[] _positions;
    private int _count;

    public OffsetIndex(long baseOffset, int maxIndexBytes)
    {
        _baseOffset = baseOffset;
        _maxEntries = Math.Max(1, maxIndexBytes / EntrySize);
        _relativeOffsets = new int[Math.Min(_maxEntries, 64)];
        _positions = new int[_relativeOffsets.Length];
    }

    /// <summary>Number of entries.</summary>
    public int Count => _count;

    /// <summary>True when no more entries fit within the configured maximum index size.</summary>
    public bool IsFull => _count >= _maxEntries;

    /// <summary>Size of the index file this index writes.</summary>
    public long SizeInBytes => (long)_count * EntrySize;

    /// <summary>The last entry's absolute offset, or the base offset when empty.</summary>
    public long LastOffset => _count == 0 ? _baseOffset : _baseOffset + _relativeOffsets[_count - 1];

    /// <summary>The last entry's position, or 0 when empty.</summary>
    public int LastPosition => _count == 0 ? 0 : _positions[_count - 1];

    /// <summary>Adds an entry; offsets and positions must increase.</summary>
    public void Append(long offset, int position)
    {
        int relative = checked((int)(offset - _baseOffset));
        if (_count > 0 && (relative <= _relativeOffsets[_count - 1] || position <= _positions[_count - 1]))
        {
            throw new InvalidOperationException($"Index entries must increase: ({relative}, {position}) after ({_relativeOffsets[_count - 1]}, {_positions[_count - 1]}).");
        }

        if (_count == _relativeOffsets.Length)
        {
            int size = Math.Min(_maxEntries, _count * 2);
            Array.Resize(ref _relativeOffsets, size);
            Array.Resize(ref _positions, size);
        }

        _relativeOffsets[_count] = relative;
        _positions[_count] = position;
        Volatile.Write(ref _count, _count + 1); // published after the entry (lock-free readers, see Lookup)
    }

    /// <summary>
    /// Position of the batch from which to scan for <paramref name="targetOffset"/>: the start of the
    /// largest indexed batch whose last offset is below the target (or 0).
    /// </summary>
    public int Lookup(long targetOffset) => Lookup(targetOffset, out _);

    /// <summary>
    /// <see cref="Lookup(long)"/>, also giving the offset the entry indexes (the last offset of the batch
    /// at the returned position), or -1 when no entry applies (position 0).
    /// </summary>
    public int Lookup(long targetOffset, out long entryOffset)
    {
        // Readers of the active segment run beside Append: read the count first (published after its
        // entries), then the arrays (a resize only ever replaces them with longer copies).
        int count = Volatile.Read(ref _count);
        int[] relativeOffsets = _relativeOffsets;
        int[] positions = _positions;
        count = Math.Min(count, Math.Min(relativeOffsets.Length, positions.Length));
        long relative = targetOffset - _baseOffset;
        int lo = 0, hi = count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (relativeOffsets[mid] < relative)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        entryOffset = found < 0 ? -1 : _baseOffset + relativeOffsets[found];
        return found < 0 ? 0 : positions[found];
    }

    /// <summary>Drops entries at or beyond <paramref name="position"/> (after a log truncation).</summary>
    public void TruncateToPosition(long position)
    {
        while (_count > 0 && _positions[_count - 1] >= position)
        {
            _count--;
        }
    }

    /// <summary>Writes the whole index to its file (replacing it) and fsyncs it.</summary>
    public void WriteTo(IFileSystem fileSystem, string path)
    {
        byte[] bytes = new byte[SizeInBytes];
        for (int i = 0; i < _count; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(i * EntrySize), _relativeOffsets[i]);
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(i * EntrySize + 4), _positions[i]);
        }

        IndexFiles.WriteWhole(fileSystem, path, bytes);
    }

    /// <summary>
    /// Loads an index file, validating it against the log's size. Throws
    /// <see cref="CorruptIndexException"/> when the file is malformed; the caller then rebuilds it.
    /// </summary>
    public static OffsetIndex Load(IFileSystem fileSystem, string path, long baseOffset, int maxIndexBytes, long logSize)
    {
        byte[] bytes = IndexFiles.ReadWhole(fileSystem, path);
        if (bytes.Length % EntrySize != 0)
        {
            throw new CorruptIndexException($"Offset index size {bytes.Length} is not a multiple of {EntrySize}", path);
        }

        var index = new OffsetIndex(baseOffset, Math.Max(maxIndexBytes, bytes.Length));
        for (int i = 0; i < bytes.Length; i += EntrySize)
        {
            int relative = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i));
            int position = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i + 4));
            if (relative < 0 || position < 0 || position >= logSize
                || (index._count > 0 && (relative <= index._relativeOffsets[index._count - 1] || position <= index._positions[index._count - 1])))
            {
                throw new CorruptIndexException($"Offset index entry {i / EntrySize} ({relative}, {position}) is out of order or beyond the log ({logSize} bytes)", path);
            }

            index.Append(baseOffset + relative, position);
        }

        return index;
    }
}

/// <summary>Whole-file helpers shared by the index files.</summary>
internal static class IndexFiles
{
    /// <summary>Replaces the file's content with <paramref name="bytes"/> and fsyncs it.</summary>
    public static void WriteWhole(IFileSystem fileSystem, string path, ReadOnlySpan<byte> bytes)
    {
        using IStorageFile file = fileSystem.OpenFile(path, FileOpenMode.OpenOrCreate);
        file.SetLength(bytes.Length);
        if (bytes.Length > 0)
        {
            file.Write(0, bytes);
        }

        file.Sync();
    }

    /// <summary>Reads the whole file.</summary>
    public static byte[] ReadWhole(IFileSystem fileSystem, string path)
    {
        using IStorageFile file = fileSystem.OpenFile(path, FileOpenMode.ReadOnly);
        long length = file.Length;
        if (length > int.MaxValue)
        {
            throw new CorruptIndexException($"Index file of {length} bytes is too large", path);
        }

        byte[] bytes = new byte[length];
        int read = file.Read(0, bytes);
        if (read != length)
        {
            throw new CorruptIndexException($"Index file shrank while being read ({read} of {length} bytes)", path);
        }

        return bytes;
    }
}
