using System.Buffers.Binary;
using System.Globalization;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Inspection;

/// <summary>
/// Read-only validation of an MVCC checkpoint file, the checks <c>TransactionEngine</c> makes when it
/// loads one (see the format at the top of <c>Mvcc/TransactionEngine.Checkpoint.cs</c>):
/// <code>
/// "checkpoint-{ts:D20}-{redoOffset:D20}.ckpt":
/// Checkpoint => Magic "TXCK", Version int16 (= 1), CheckpointTs int64, RedoOffset int64, MapCount int32,
///               Map* (NameLength int16, Name, EntryCount int64, Entry* (KeyLength int32, Key, ValueLength int32, Value)),
///               Crc uint32 (CRC-32C of every byte before it)
/// </code>
/// </summary>
internal static class CheckpointFile
{
    private const short Version = 1;
    private static ReadOnlySpan<byte> Magic => "TXCK"u8;

    /// <summary>Parses the timestamp and redo offset from the file name.</summary>
    public static bool TryParseName(string path, out long timestamp, out long redoOffset)
    {
        timestamp = -1;
        redoOffset = -1;
        string[] parts = Path.GetFileNameWithoutExtension(path).Split('-');
        return parts.Length == 3 && parts[0] == "checkpoint"
            && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out timestamp)
            && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out redoOffset);
    }

    /// <summary>Returns null when the file is a valid checkpoint for its name, else what is wrong (and where).</summary>
    public static (string Problem, long Position)? Validate(string path, long expectedTimestamp, long expectedRedoOffset, out int maps, out long entries)
    {
        maps = 0;
        entries = 0;
        byte[] bytes = IndexFiles.ReadWhole(OsFileSystem.Instance, path);
        if (bytes.Length < 4 + 2 + 8 + 8 + 4 + 4 || !bytes.AsSpan(0, 4).SequenceEqual(Magic))
        {
            return ("no valid checkpoint header (magic \"TXCK\")", 0);
        }

        uint stored = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(bytes.Length - 4));
        uint actual = Crc32C.Compute(bytes.AsSpan(0, bytes.Length - 4));
        if (stored != actual)
        {
            return ($"checksum mismatch (stored 0x{stored:x8}, computed 0x{actual:x8})", bytes.Length - 4);
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(bytes.AsSpan(4));
        if (version != Version)
        {
            return ($"version {version} is not supported (expected {Version})", 4);
        }

        long ts = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(6));
        long redo = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(14));
        if (ts != expectedTimestamp || redo != expectedRedoOffset)
        {
            return ($"timestamp {ts} and redo offset {redo} do not match the file name ({expectedTimestamp}, {expectedRedoOffset})", 6);
        }

        int end = bytes.Length - 4;
        int p = 22;
        try
        {
            int mapCount = BinaryPrimitives.ReadInt32BigEndian(Slice(bytes, p, 4, end));
            p += 4;
            for (int m = 0; m < mapCount; m++)
            {
                int nameLength = BinaryPrimitives.ReadInt16BigEndian(Slice(bytes, p, 2, end));
                Slice(bytes, p + 2, nameLength, end);
                p += 2 + nameLength;
                long count = BinaryPrimitives.ReadInt64BigEndian(Slice(bytes, p, 8, end));
                p += 8;
                for (long e = 0; e < count; e++)
                {
                    int keyLength = BinaryPrimitives.ReadInt32BigEndian(Slice(bytes, p, 4, end));
                    Slice(bytes, p + 4, keyLength, end);
                    p += 4 + keyLength;
                    int valueLength = BinaryPrimitives.ReadInt32BigEndian(Slice(bytes, p, 4, end));
                    Slice(bytes, p + 4, valueLength, end);
                    p += 4 + valueLength;
                    entries++;
                }

                maps++;
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            return ("truncated: a length runs past the end of the data", p);
        }

        return p != end ? ($"{end - p} bytes follow the last map", p) : null;
    }

    private static ReadOnlySpan<byte> Slice(byte[] bytes, int position, int length, int end)
    {
        if (length < 0 || position < 0 || position > end - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length));
        }

        return bytes.AsSpan(position, length);
    }
}
