using System.Buffers.Binary;

namespace TxLog.Storage;

/// <summary>An aborted transaction as recorded in a <c>.txnindex</c> file.</summary>
/// <param name="ProducerId">The producer whose transaction was aborted.</param>
/// <param name="FirstOffset">Offset of the transaction's first record in this partition.</param>
/// <param name="LastOffset">Offset of the ABORT marker.</param>
/// <param name="LastStableOffset">The partition's last stable offset once the marker was written.</param>
internal readonly record struct AbortedTransaction(long ProducerId, long FirstOffset, long LastOffset, long LastStableOffset);

/// <summary>
/// The aborted-transaction index of one segment, <c>{baseOffset:D20}.txnindex</c>, in Kafka's layout
/// (byte for byte: other tools read it):
/// <code>
/// TransactionIndex => Entry*   (34 bytes each, in marker order)
/// Entry            => Version int16 (= 0), ProducerId int64, FirstOffset int64, LastOffset int64, LastStableOffset int64
/// </code>
/// An entry is appended when an ABORT marker lands in the segment. The entries are read once, at open,
/// into the partition's in-memory aborted list, which read-committed readers use to skip the aborted
/// transactions' records. The layout has no checksum; the partition's <see cref="TransactionIndexChecksums"/>
/// file vouches for each segment's file, and a file it does not vouch for is checked against (and if
/// need be rebuilt from) the control batches of the log (<c>LogPartition.LoadProducerState</c>).
/// Not thread-safe: the partition's append lock serialises writers.
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

    /// <summary>The file's bytes, or an empty array when there is no file (a segment without aborts).</summary>
    public static byte[] ReadBytes(IFileSystem fileSystem, string path) =>
        fileSystem.FileExists(path) ? IndexFiles.ReadWhole(fileSystem, path) : [];

    /// <summary>The file content holding exactly these entries.</summary>
    public static byte[] Encode(ReadOnlySpan<AbortedTransaction> entries)
    {
        byte[] bytes = new byte[entries.Length * EntrySize];
        for (int i = 0; i < entries.Length; i++)
        {
            Encode(entries[i], bytes.AsSpan(i * EntrySize));
        }

        return bytes;
    }

    /// <summary>
    /// Replaces the file with <paramref name="bytes"/> (from <see cref="Encode(ReadOnlySpan{AbortedTransaction})"/>)
    /// and fsyncs it; no bytes means no file.
    /// </summary>
    public static void Rewrite(IFileSystem fileSystem, string path, byte[] bytes)
    {
        if (bytes.Length == 0)
        {
            fileSystem.DeleteFile(path);
            return;
        }

        IndexFiles.WriteWhole(fileSystem, path, bytes);
    }

    /// <summary>
    /// Decodes every whole entry of a segment's file into <paramref name="entries"/> and checks them:
    /// version 0, <c>0 ≤ FirstOffset ≤ LastOffset</c>, the marker (<c>LastOffset</c>) inside the segment's
    /// offsets <c>[segmentBaseOffset, segmentEndOffset)</c> and after the previous entry's, and
    /// <c>0 ≤ LastStableOffset ≤ LastOffset + 1</c> (the LSO once the marker was written cannot be
    /// beyond it). Returns null when all hold, else what is wrong first (a partial last entry, a torn
    /// append, counts too). <paramref name="badEntry"/> is the index of the first entry that does not
    /// hold, or -1.
    /// </summary>
    public static string? Parse(ReadOnlySpan<byte> bytes, long segmentBaseOffset, long segmentEndOffset, List<AbortedTransaction> entries, out int badEntry)
    {
        string? problem = null;
        badEntry = -1;
        long previous = long.MinValue;
        int whole = bytes.Length - (bytes.Length % EntrySize);
        for (int i = 0; i < whole; i += EntrySize)
        {
            AbortedTransaction entry = Decode(bytes.Slice(i, EntrySize), out short version);
            entries.Add(entry);
            if (problem is not null)
            {
                continue;
            }

            if (!IsWellFormed(version, entry))
            {
                problem = $"entry {i / EntrySize} is malformed (version {version}, offsets {entry.FirstOffset}..{entry.LastOffset}, last stable offset {entry.LastStableOffset})";
            }
            else if (entry.LastOffset < segmentBaseOffset || entry.LastOffset >= segmentEndOffset)
            {
                problem = $"entry {i / EntrySize} names a marker at offset {entry.LastOffset}, outside the segment's offsets {segmentBaseOffset}..{segmentEndOffset - 1}";
            }
            else if (entry.LastOffset <= previous)
            {
                problem = $"entry {i / EntrySize} (marker at offset {entry.LastOffset}) is not in marker order";
            }

            if (problem is not null)
            {
                badEntry = i / EntrySize;
            }

            previous = entry.LastOffset;
        }

        if (whole != bytes.Length)
        {
            problem ??= $"size {bytes.Length} is not a multiple of {EntrySize}";
        }

        return problem;
    }

    /// <summary>Decodes one entry (<see cref="EntrySize"/> bytes) and its version field.</summary>
    public static AbortedTransaction Decode(ReadOnlySpan<byte> entry, out short version)
    {
        version = BinaryPrimitives.ReadInt16BigEndian(entry);
        return new AbortedTransaction(
            BinaryPrimitives.ReadInt64BigEndian(entry.Slice(2)),
            BinaryPrimitives.ReadInt64BigEndian(entry.Slice(10)),
            BinaryPrimitives.ReadInt64BigEndian(entry.Slice(18)),
            BinaryPrimitives.ReadInt64BigEndian(entry.Slice(26)));
    }

    /// <summary>
    /// Version 0, <c>0 ≤ FirstOffset ≤ LastOffset</c> and <c>0 ≤ LastStableOffset ≤ LastOffset + 1</c> (the
    /// LSO once the marker was written cannot be beyond it): what every entry must satisfy on its own.
    /// </summary>
    public static bool IsWellFormed(short version, in AbortedTransaction entry) =>
        version == CurrentVersion && entry.FirstOffset >= 0 && entry.LastOffset >= entry.FirstOffset
        && entry.LastStableOffset >= 0 && entry.LastStableOffset <= entry.LastOffset + 1;

    private static void Encode(in AbortedTransaction entry, Span<byte> bytes)
    {
        BinaryPrimitives.WriteInt16BigEndian(bytes, CurrentVersion);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(2), entry.ProducerId);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(10), entry.FirstOffset);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(18), entry.LastOffset);
        BinaryPrimitives.WriteInt64BigEndian(bytes.Slice(26), entry.LastStableOffset);
    }
}
