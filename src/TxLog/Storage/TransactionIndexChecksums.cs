using System.Buffers.Binary;
using TxLog.Records;

namespace TxLog.Storage;

/// <summary>The recorded checksum of one segment's <c>.txnindex</c>.</summary>
/// <param name="SegmentBaseOffset">The segment's base offset (its file name).</param>
/// <param name="Entries">Entries in the file (0: no file, or an empty one).</param>
/// <param name="Crc">CRC-32C of the whole file (0 for no bytes).</param>
internal readonly record struct TransactionIndexChecksum(long SegmentBaseOffset, int Entries, uint Crc)
{
    /// <summary>The checksum of a <c>.txnindex</c> with these bytes (a missing file has none).</summary>
    public static TransactionIndexChecksum Of(long segmentBaseOffset, ReadOnlySpan<byte> bytes) =>
        new(segmentBaseOffset, bytes.Length / TransactionIndex.EntrySize, Crc32C.Compute(bytes));

    /// <summary>True when <paramref name="bytes"/> are exactly the file this checksum was taken of.</summary>
    public bool Matches(ReadOnlySpan<byte> bytes) =>
        bytes.Length == (long)Entries * TransactionIndex.EntrySize && Crc32C.Compute(bytes) == Crc;
}

/// <summary>
/// <c>txnindex.checksums</c> in a partition directory: a checksum per segment of the segment's
/// <c>.txnindex</c>, whose Kafka layout has none (and must stay byte-compatible):
/// <code>
/// TxnIndexChecksums => Magic "TXIC", Version int16 (= 1), Crc uint32 (CRC-32C of what follows), Count int32, Segment*
/// Segment           => BaseOffset int64, Entries int32, Crc uint32 (CRC-32C of the .txnindex bytes; 0 entries and 0 without a file)
/// </code>
/// Segments in ascending base-offset order. Written atomically (temp file, fsync, rename) when a segment
/// rolls (its <c>.txnindex</c> is final then), at a clean close (with the active segment's) and at
/// open when recovery changed something. Its only use is to tell, at open, which <c>.txnindex</c> files
/// can be trusted without reading the log: a missing or mismatching entry makes the store check that
/// segment's index against the log (the source of truth). A stale file (a crash between a roll's
/// index fsync and this file's rename) therefore costs a replay, never a wrong answer.
/// </summary>
internal static class TransactionIndexChecksums
{
    /// <summary>The file's name in a partition directory.</summary>
    public const string FileName = "txnindex.checksums";

    /// <summary>The only version.</summary>
    public const short CurrentVersion = 1;

    private const int HeaderSize = 10; // magic, version, CRC
    private const int SegmentSize = 16;
    private static ReadOnlySpan<byte> Magic => "TXIC"u8;

    /// <summary>The file's path in a partition directory.</summary>
    public static string PathFor(string partitionDirectory) => Path.Combine(partitionDirectory, FileName);

    /// <summary>The checksum of the segment's <c>.txnindex</c> as it is on disk now.</summary>
    public static TransactionIndexChecksum ForFile(IFileSystem fileSystem, string partitionDirectory, long segmentBaseOffset) =>
        TransactionIndexChecksum.Of(segmentBaseOffset, TransactionIndex.ReadBytes(fileSystem, TransactionIndex.PathFor(partitionDirectory, segmentBaseOffset)));

    /// <summary>The file's bytes, or null when there is none.</summary>
    public static byte[]? ReadBytes(IFileSystem fileSystem, string partitionDirectory)
    {
        string path = PathFor(partitionDirectory);
        return fileSystem.FileExists(path) ? IndexFiles.ReadWhole(fileSystem, path) : null;
    }

    /// <summary>The file content for these checksums (ascending base offsets).</summary>
    public static byte[] Encode(IReadOnlyList<TransactionIndexChecksum> segments)
    {
        byte[] bytes = new byte[HeaderSize + 4 + (segments.Count * SegmentSize)];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteInt16BigEndian(bytes.AsSpan(4), CurrentVersion);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(HeaderSize), segments.Count);
        for (int i = 0; i < segments.Count; i++)
        {
            Span<byte> s = bytes.AsSpan(HeaderSize + 4 + (i * SegmentSize));
            BinaryPrimitives.WriteInt64BigEndian(s, segments[i].SegmentBaseOffset);
            BinaryPrimitives.WriteInt32BigEndian(s.Slice(8), segments[i].Entries);
            BinaryPrimitives.WriteUInt32BigEndian(s.Slice(12), segments[i].Crc);
        }

        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(6), Crc32C.Compute(bytes.AsSpan(HeaderSize)));
        return bytes;
    }

    /// <summary>
    /// Decodes the file's bytes by segment base offset; throws <see cref="CorruptIndexException"/> on a
    /// bad magic, version, CRC or length.
    /// </summary>
    public static Dictionary<long, TransactionIndexChecksum> Decode(ReadOnlySpan<byte> bytes, string path)
    {
        if (bytes.Length < HeaderSize + 4 || !bytes.Slice(0, 4).SequenceEqual(Magic))
        {
            throw new CorruptIndexException("Transaction index checksums have no valid header", path);
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(bytes.Slice(4));
        if (version != CurrentVersion)
        {
            throw new CorruptIndexException($"Transaction index checksums version {version} is not supported (expected {CurrentVersion})", path);
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(bytes.Slice(6)) != Crc32C.Compute(bytes.Slice(HeaderSize)))
        {
            throw new CorruptIndexException("Transaction index checksums: checksum mismatch", path);
        }

        int count = BinaryPrimitives.ReadInt32BigEndian(bytes.Slice(HeaderSize));
        if (count < 0 || bytes.Length != HeaderSize + 4 + ((long)count * SegmentSize))
        {
            throw new CorruptIndexException($"Transaction index checksums: {bytes.Length} bytes do not hold {count} segments", path);
        }

        var segments = new Dictionary<long, TransactionIndexChecksum>(count);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> s = bytes.Slice(HeaderSize + 4 + (i * SegmentSize));
            var entry = new TransactionIndexChecksum(BinaryPrimitives.ReadInt64BigEndian(s), BinaryPrimitives.ReadInt32BigEndian(s.Slice(8)), BinaryPrimitives.ReadUInt32BigEndian(s.Slice(12)));
            if (entry.Entries < 0 || !segments.TryAdd(entry.SegmentBaseOffset, entry))
            {
                throw new CorruptIndexException($"Transaction index checksums: segment {i} (base offset {entry.SegmentBaseOffset}) is invalid or repeated", path);
            }
        }

        return segments;
    }

    /// <summary>
    /// Replaces the file atomically. With <paramref name="syncDirectory"/> false the caller fsyncs the
    /// directory afterwards (until then a crash may leave the previous file, which is only stale).
    /// </summary>
    public static void Write(IFileSystem fileSystem, string partitionDirectory, byte[] bytes, bool syncDirectory) =>
        AtomicFile.Write(fileSystem, PathFor(partitionDirectory), bytes, syncDirectory);
}
