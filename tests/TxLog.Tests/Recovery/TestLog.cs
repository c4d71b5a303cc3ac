using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Tests.Recovery;

/// <summary>A record the tests append and later expect to read back, with its own timestamp.</summary>
internal sealed record TestRecord(byte[]? Key, byte[]? Value, long Timestamp, params (string Key, byte[]? Value)[] Headers)
{
    public Message ToMessage() => new(Key, Value)
    {
        Timestamp = Timestamp,
        Headers = Headers.Length == 0 ? null : Array.ConvertAll(Headers, h => new RecordHeader(h.Key, h.Value)),
    };
}

/// <summary>
/// Shared pieces of the recovery, fault and crash tests: a one-partition store layout, a walk of a
/// <c>.log</c> file written from the format (DESIGN.md §4) rather than from the implementation, and
/// a canonical text form of records so that expected and actual contents compare as lists.
/// </summary>
internal static class TestLog
{
    public const string Topic = "t";

    /// <summary>Size of the RecordBatch v2 fields before batchLength counts (baseOffset, batchLength).</summary>
    public const int LogOverhead = 12;

    public static string PartitionDirectory(string root) => Path.Combine(root, Topic + "-0");

    public static string SegmentFile(string root, long baseOffset, string extension) =>
        Path.Combine(PartitionDirectory(root), baseOffset.ToString("D20", CultureInfo.InvariantCulture) + extension);

    public static string LogFile(string root, long baseOffset = 0) => SegmentFile(root, baseOffset, ".log");

    /// <summary>Partitions of the store's internal topics (transaction state, consumer offsets): recovery scans them too.</summary>
    public static int InternalPartitions(LogStore store) =>
        store.ListTopics(includeInternal: true).Where(t => t.Name.StartsWith("__", StringComparison.Ordinal)).Sum(t => t.Partitions);

    public static string MarkerFile(string root) => Path.Combine(root, LogStore.CleanShutdownFileName);

    /// <summary>Simulates a crash of a cleanly closed store: without the marker, open must validate the tail.</summary>
    public static void RemoveCleanShutdownMarker(string root)
    {
        Assert.That(File.Exists(MarkerFile(root)), Is.True, "precondition: the store was closed cleanly");
        File.Delete(MarkerFile(root));
    }

    /// <summary>
    /// Store options of these tests. No roll by age: the tests' records carry fixed timestamps from the
    /// past, which would roll a segment per batch (segment age is measured from record timestamps, as
    /// in Kafka).
    /// </summary>
    /// <param name="fileSystem">The seam; default the real file system.</param>
    /// <param name="durability">The durability mode.</param>
    /// <param name="preallocate">
    /// False turns off the zeros a group-commit partition writes ahead of its data from a background
    /// work item: fault tests that count writes or fsyncs need every one of them to be the test's own.
    /// </param>
    public static LogStoreOptions Options(IFileSystem? fileSystem = null, DurabilityMode durability = DurabilityMode.GroupCommit, bool preallocate = true)
    {
        var options = new LogStoreOptions
        {
            Durability = durability,
            SegmentAge = null,
            FileSystem = fileSystem ?? OsFileSystem.Instance,
        };
        if (!preallocate)
        {
            options.PreallocateBytes = 0;
        }

        return options;
    }

    /// <summary>(position, size) of each batch of a .log file, found by following batchLength (§4) from byte 0.</summary>
    public static List<(long Position, int Size)> WalkBatches(string logPath)
    {
        byte[] bytes = File.ReadAllBytes(logPath);
        var batches = new List<(long, int)>();
        long position = 0;
        while (position < bytes.Length)
        {
            Assert.That(bytes.Length - position, Is.GreaterThanOrEqualTo(LogOverhead), $"partial batch header at {position} of {logPath}");
            int size = LogOverhead + BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan((int)position + 8));
            Assert.That(position + size, Is.LessThanOrEqualTo(bytes.Length), $"batch at {position} runs past the end of {logPath}");
            batches.Add((position, size));
            position += size;
        }

        return batches;
    }

    /// <summary>Appends each group of records as one batch; returns the base offset of each batch.</summary>
    public static List<long> AppendBatches(LogPartition partition, IEnumerable<TestRecord[]> batches)
    {
        var baseOffsets = new List<long>();
        foreach (TestRecord[] batch in batches)
        {
            Message[] messages = Array.ConvertAll(batch, r => r.ToMessage());
            AppendResult result = partition.Append(messages);
            Assert.That(result.Count, Is.EqualTo(batch.Length));
            baseOffsets.Add(result.BaseOffset);
        }

        return baseOffsets;
    }

    /// <summary>The canonical text of the records of <paramref name="batches"/>, numbered densely from <paramref name="firstOffset"/>.</summary>
    public static List<string> Describe(IEnumerable<TestRecord[]> batches, long firstOffset = 0)
    {
        var list = new List<string>();
        long offset = firstOffset;
        foreach (TestRecord[] batch in batches)
        {
            foreach (TestRecord r in batch)
            {
                var headers = new StringBuilder();
                foreach ((string key, byte[]? value) in r.Headers)
                {
                    headers.Append(CultureInfo.InvariantCulture, $"[{key}={Hex(value)}]");
                }

                list.Add(Describe(offset++, r.Timestamp, Hex(r.Key), Hex(r.Value), headers.ToString()));
            }
        }

        return list;
    }

    /// <summary>Reads every record from <paramref name="from"/> to the high watermark, in canonical text.</summary>
    public static List<string> ReadAll(LogPartition partition, long from = 0)
    {
        var list = new List<string>();
        using LogReader reader = partition.OpenReader(from);
        while (reader.TryRead(out Record record))
        {
            list.Add(Describe(record));
        }

        return list;
    }

    public static string Describe(in Record record)
    {
        var headers = new StringBuilder();
        foreach (RecordHeaderView h in record.Headers)
        {
            headers.Append(CultureInfo.InvariantCulture, $"[{Encoding.UTF8.GetString(h.Key)}={(h.HasValue ? Convert.ToHexString(h.Value) : "null")}]");
        }

        return Describe(record.Offset, record.Timestamp,
            record.HasKey ? Convert.ToHexString(record.Key) : "null",
            record.HasValue ? Convert.ToHexString(record.Value) : "null",
            headers.ToString());
    }

    private static string Describe(long offset, long timestamp, string key, string value, string headers) =>
        string.Create(CultureInfo.InvariantCulture, $"{offset}@{timestamp} k={key} v={value} h={headers}");

    private static string Hex(byte[]? bytes) => bytes is null ? "null" : Convert.ToHexString(bytes);

    public static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Every file under <paramref name="root"/> (relative path → bytes), to restore a store between cases.</summary>
    public static Dictionary<string, byte[]> Snapshot(string root)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string file in Directory.GetFiles(root, "*", SearchOption.AllDirectories))
        {
            files[Path.GetRelativePath(root, file)] = File.ReadAllBytes(file);
        }

        return files;
    }

    /// <summary>Replaces the contents of <paramref name="root"/> with a <see cref="Snapshot"/>.</summary>
    public static void Restore(string root, Dictionary<string, byte[]> snapshot)
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        foreach ((string relative, byte[] bytes) in snapshot)
        {
            string path = Path.Combine(root, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, bytes);
        }
    }
}
