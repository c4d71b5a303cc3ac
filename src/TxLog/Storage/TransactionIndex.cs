using System.Buffers.Binary;

namespace TxLog.Storage;

/// <summary>An aborted transaction as recorded in a <c>.txnindex</c> file.</summary>
/// <param name="ProducerId">The producer whose transaction was aborted.</param>
/// <param name="FirstOffset">Offset of the transaction's first record in this partition.</param>
/// <param name="LastOffset">Offset of the ABORT marker.</param>
/// <param name="LastStableOffset">The partition's last stable offset once the marker was written.</param>
internal readonly record struct AbortedTransaction(long ProducerId, long FirstOffset, long LastOffset, long LastStableOffset);

/// <summary>
/// The aborted-transaction index of one segment, <c>{baseOffset:D20}.txnindex</c>, in Kafka's layout:
/// <code>
/// TransactionIndex => Entry*   (34 bytes each, in marker order)
/// Entry            => Version int16 (= 0), ProducerId int64, FirstOffset int64, LastOffset int64, LastStableOffset int64
/// </code>
/// An entry is appended when an ABORT marker lands in the segment. Read-committed readers use the
/// entries to skip the aborted transaction's records. Like the other indexes it is derived data:
/// after a crash the active segment's entries are rebuilt from the log. Not thread-safe: the
/// partition's producer-state lock serialises writers.
/// </summary>
internal static class TransactionIndex
{
    /// <summary>Size of one entry.</summary>
    public const int EntrySize = 34;

    /// <summary>The only entry version.</summary>
    public const short CurrentVersion = 0;

    /// <summary>The file of the segment with this base offset.</summary>
    public static string PathFor(string partitionDirectory, long segmentBaseOffset) =>
        Path.Combine(partitionDirectory, LogSegment.FileName(segmentBaseOffset, ".txnindex"));

    /// <summary>Appends one entry (page cache; fsynced with the segment at roll and close).</summary>
    public static void Append(IFileSystem fileSystem, string path, in AbortedTransaction entry)
    {
        Span<byte> bytes = stackalloc byte[EntrySize];
        Encode(entry, bytes);
        using IStorageFile file = fileSystem.OpenFile(path, FileOpenMode.OpenOrCreate);
        long length = file.Length;
        file.Write(length - (length % EntrySize), bytes);
    }

    /// <summary>Replaces the file with exactly these entries and fsyncs it (after recovery).</summary>
    public static void Rewrite(IFileSystem fileSystem, string path, IReadOnlyList<AbortedTransaction> entries)
    {
        if (entries.Count == 0)
        {
            fileSystem.DeleteFile(path);
            return;
        }

        byte[] bytes = new byte[entries.Count * EntrySize];
        for (int i = 0; i < entries.Count; i++)
        {
            Encode(entries[i], bytes.AsSpan(i * EntrySize));
        }

        IndexFiles.WriteWhole(fileSystem, path, bytes);
    }

    /// <summary>
    /// Reads the entries; throws <see cref="CorruptIndexException"/> on a wrong size, version or
    /// inconsistent offsets.
    /// </summary>
    public static List<AbortedTransaction> Load(IFileSystem fileSystem, string path)
    {
        var list = new List<AbortedTransaction>();
        if (!fileSystem.FileExists(path))
        {
            return list;
        }

        byte[] bytes = IndexFiles.ReadWhole(fileSystem, path);
        if (bytes.Length % EntrySize != 0)
        {
            throw new CorruptIndexException($"Transaction index size {bytes.Length} is not a multiple of {EntrySize}", path);
        }

        for (int i = 0; i < bytes.Length; i += EntrySize)
        {
            ReadOnlySpan<byte> e = bytes.AsSpan(i, EntrySize);
            short version = BinaryPrimitives.ReadInt16BigEndian(e);
            var entry = new AbortedTransaction(
                BinaryPrimitives.ReadInt64BigEndian(e.Slice(2)),
                BinaryPrimitives.ReadInt64BigEndian(e.Slice(10)),
                BinaryPrimitives.ReadInt64BigEndian(e.Slice(18)),
                BinaryPrimitives.ReadInt64BigEndian(e.Slice(26)));
            if (version != CurrentVersion || entry.FirstOffset < 0 || entry.LastOffset < entry.FirstOffset)
            {
                throw new CorruptIndexException($"Transaction index entry {i / EntrySize} is invalid (version {version}, offsets {entry.FirstOffset}..{entry.LastOffset})", path);
            }

            list.Add(entry);
        }

        return list;
    }

    private static void Encode(in AbortedTransaction entry, Span<byte> bytes)
    {
        BinaryPrimitives.WriteInt16BigEndian(bytes, CurrentVersion);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(2), entry.ProducerId);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(10), entry.FirstOffset);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(18), entry.LastOffset);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(26), entry.LastStableOffset);
    }
}
