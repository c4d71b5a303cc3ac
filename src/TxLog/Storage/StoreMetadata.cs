using System.Buffers.Binary;
using System.Text;
using TxLog.Records;

namespace TxLog.Storage;

/// <summary>
/// The store's topic list, <c>topics.meta</c>, replaced atomically (temp file, fsync, rename, fsync
/// directory) on every change:
/// <code>
/// StoreMetadata => Magic "TXLM" (4 bytes), Version int16 (= 1), Crc uint32 (CRC-32C of everything after it),
///                  TopicCount int32, Topic*
/// Topic         => NameLength int16, Name (ASCII), Partitions int32,
///                  SegmentBytes int64, SegmentAgeMs int64, RetentionBytes int64, RetentionMs int64   (-1 = store default)
/// </code>
/// Not thread-safe: the store serialises topic changes.
/// </summary>
internal static class StoreMetadata
{
    public const string FileName = "topics.meta";
    private const short CurrentVersion = 1;
    private static ReadOnlySpan<byte> Magic => "TXLM"u8;
    private const int HeaderSize = 4 + 2 + 4;

    public static void Write(IFileSystem fileSystem, string directory, IReadOnlyCollection<TopicDescription> topics)
    {
        using var stream = new MemoryStream();
        Span<byte> scratch = stackalloc byte[8];
        stream.Write(Magic);
        BinaryPrimitives.WriteInt16BigEndian(scratch, CurrentVersion);
        stream.Write(scratch.Slice(0, 2));
        stream.Write(scratch.Slice(0, 4)); // CRC placeholder
        BinaryPrimitives.WriteInt32BigEndian(scratch, topics.Count);
        stream.Write(scratch.Slice(0, 4));
        foreach (TopicDescription topic in topics)
        {
            byte[] name = Encoding.ASCII.GetBytes(topic.Name);
            BinaryPrimitives.WriteInt16BigEndian(scratch, (short)name.Length);
            stream.Write(scratch.Slice(0, 2));
            stream.Write(name);
            BinaryPrimitives.WriteInt32BigEndian(scratch, topic.Partitions);
            stream.Write(scratch.Slice(0, 4));
            WriteLong(stream, topic.Options.SegmentBytes ?? -1);
            WriteLong(stream, topic.Options.SegmentAge is { } a ? (long)a.TotalMilliseconds : -1);
            WriteLong(stream, topic.Options.RetentionBytes ?? -1);
            WriteLong(stream, topic.Options.RetentionTime is { } r ? (long)r.TotalMilliseconds : -1);
        }

        byte[] bytes = stream.ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(6), Crc32C.Compute(bytes.AsSpan(HeaderSize)));
        AtomicFile.Write(fileSystem, Path.Combine(directory, FileName), bytes);
    }

    private static void WriteLong(Stream stream, long value)
    {
        Span<byte> scratch = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(scratch, value);
        stream.Write(scratch);
    }

    public static List<TopicDescription> Read(IFileSystem fileSystem, string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!fileSystem.FileExists(path))
        {
            return [];
        }

        byte[] bytes = IndexFiles.ReadWhole(fileSystem, path);
        if (bytes.Length < HeaderSize + 4 || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
        {
            throw new CorruptIndexException("Store metadata has no valid header", path);
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(bytes.AsSpan(4));
        if (version != CurrentVersion)
        {
            throw new CorruptIndexException($"Store metadata version {version} is not supported (expected {CurrentVersion})", path);
        }

        uint crc = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(6));
        if (crc != Crc32C.Compute(bytes.AsSpan(HeaderSize)))
        {
            throw new CorruptIndexException("Store metadata checksum mismatch", path);
        }

        var reader = new SpanReader(bytes, HeaderSize, path);
        int count = reader.Int32();
        var topics = new List<TopicDescription>(Math.Min(count, 1024));
        for (int i = 0; i < count; i++)
        {
            int nameLength = reader.Int16();
            string name = Encoding.ASCII.GetString(reader.Bytes(nameLength));
            int partitions = reader.Int32();
            long segmentBytes = reader.Int64();
            long segmentAgeMs = reader.Int64();
            long retentionBytes = reader.Int64();
            long retentionMs = reader.Int64();
            topics.Add(new TopicDescription(name, partitions, new TopicOptions
            {
                SegmentBytes = segmentBytes < 0 ? null : segmentBytes,
                SegmentAge = segmentAgeMs < 0 ? null : TimeSpan.FromMilliseconds(segmentAgeMs),
                RetentionBytes = retentionBytes < 0 ? null : retentionBytes,
                RetentionTime = retentionMs < 0 ? null : TimeSpan.FromMilliseconds(retentionMs),
            }));
        }

        return topics;
    }

    private ref struct SpanReader(byte[] bytes, int position, string path)
    {
        private int _position = position;

        public short Int16() => BinaryPrimitives.ReadInt16BigEndian(Bytes(2));

        public int Int32() => BinaryPrimitives.ReadInt32BigEndian(Bytes(4));

        public long Int64() => BinaryPrimitives.ReadInt64BigEndian(Bytes(8));

        public ReadOnlySpan<byte> Bytes(int count)
        {
            if (count < 0 || count > bytes.Length - _position)
            {
                throw new CorruptIndexException("Store metadata is truncated", path);
            }

            ReadOnlySpan<byte> span = bytes.AsSpan(_position, count);
            _position += count;
            return span;
        }
    }
}

/// <summary>The atomic file lifecycle: write a temp file, fsync it, rename it over the target, fsync the directory.</summary>
internal static class AtomicFile
{
    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="bytes"/>; without <paramref name="syncDirectory"/>
    /// the caller fsyncs the directory (the rename is durable only then).
    /// </summary>
    public static void Write(IFileSystem fileSystem, string path, ReadOnlySpan<byte> bytes, bool syncDirectory = true)
    {
        string temp = path + ".tmp";
        using (IStorageFile file = fileSystem.OpenFile(temp, FileOpenMode.OpenOrCreate))
        {
            file.SetLength(0);
            file.Write(0, bytes);
            file.Sync();
        }

        fileSystem.MoveFile(temp, path);
        if (syncDirectory)
        {
            fileSystem.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
    }
}
