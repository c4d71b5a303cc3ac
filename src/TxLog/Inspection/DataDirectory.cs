using System.Globalization;
using TxLog.Storage;

namespace TxLog.Inspection;

/// <summary>Whether another process (or another store in this one) has the data directory open.</summary>
internal enum StoreLockState
{
    /// <summary>No lock file: the directory was never opened by a store (or the file was removed).</summary>
    NoLockFile,

    /// <summary>The lock file exists and nobody holds it: the store is closed.</summary>
    Free,

    /// <summary>The lock file is held: a store has the directory open right now.</summary>
    Held,
}

/// <summary>One <c>.log</c> file of a partition and its companion files.</summary>
/// <param name="BaseOffset">The base offset in the file name.</param>
/// <param name="LogPath">Full path of the <c>.log</c> file.</param>
internal sealed record SegmentFile(long BaseOffset, string LogPath)
{
    /// <summary>The <c>.index</c> file.</summary>
    public string IndexPath => Path.ChangeExtension(LogPath, ".index");

    /// <summary>The <c>.timeindex</c> file.</summary>
    public string TimeIndexPath => Path.ChangeExtension(LogPath, ".timeindex");

    /// <summary>The <c>.txnindex</c> file.</summary>
    public string TransactionIndexPath => Path.ChangeExtension(LogPath, ".txnindex");

    /// <summary>The file's current length.</summary>
    public long FileLength => File.Exists(LogPath) ? new FileInfo(LogPath).Length : 0;
}

/// <summary>
/// Read-only view of a data directory's layout (see docs/format.md): the topic list, the partition
/// directories and their segment files, the lock file and the clean-shutdown marker. Never writes.
/// </summary>
internal sealed class DataDirectory
{
    /// <summary>Name of the MVCC checkpoint directory.</summary>
    public const string CheckpointDirectoryName = "mvcc";

    public DataDirectory(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>Full path of the directory.</summary>
    public string Path { get; }

    /// <summary>Full path of <c>topics.meta</c>.</summary>
    public string MetadataPath => System.IO.Path.Combine(Path, StoreMetadata.FileName);

    /// <summary>True when the last close was clean (the marker exists; a store deletes it at open).</summary>
    public bool CleanShutdown => File.Exists(System.IO.Path.Combine(Path, LogStore.CleanShutdownFileName));

    /// <summary>True when the directory holds a topic list or at least one partition directory.</summary>
    public bool LooksLikeStore =>
        Directory.Exists(Path)
        && (File.Exists(MetadataPath) || Directory.GetDirectories(Path).Any(d => IsPartitionDirectoryName(System.IO.Path.GetFileName(d), out _, out _)));

    /// <summary>
    /// Reads the topic list (internal topics included); throws <see cref="CorruptIndexException"/> when
    /// it is corrupt, or missing while partition directories exist (a store without its topic list is
    /// damaged, not empty).
    /// </summary>
    public List<TopicDescription> ReadTopics()
    {
        if (!File.Exists(MetadataPath) && Directory.GetDirectories(Path).Any(d => IsPartitionDirectoryName(System.IO.Path.GetFileName(d), out _, out _)))
        {
            throw new CorruptIndexException($"{StoreMetadata.FileName} is missing but the directory holds partition directories: the topic list is lost", MetadataPath);
        }

        return StoreMetadata.Read(OsFileSystem.Instance, Path);
    }

    /// <summary>The directory of a partition.</summary>
    public string PartitionDirectory(string topic, int partition) =>
        System.IO.Path.Combine(Path, topic + "-" + partition.ToString(CultureInfo.InvariantCulture));

    /// <summary>
    /// Probes the lock file without creating or changing it: a shared, non-blocking lock on a
    /// read-only handle fails while a store holds its exclusive lock (flock on Unix; the same
    /// FileShare rule on Windows). The probe's handle is closed at once.
    /// </summary>
    public StoreLockState ProbeLock()
    {
        string path = System.IO.Path.Combine(Path, LogStore.LockFileName);
        if (!File.Exists(path))
        {
            return StoreLockState.NoLockFile;
        }

        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return StoreLockState.Free;
        }
        catch (FileNotFoundException)
        {
            return StoreLockState.NoLockFile;
        }
        catch (IOException)
        {
            return StoreLockState.Held;
        }
        catch (UnauthorizedAccessException)
        {
            return StoreLockState.Held;
        }
    }

    /// <summary>True for a name of the form <c>{topic}-{partition}</c>.</summary>
    public static bool IsPartitionDirectoryName(string name, out string topic, out int partition)
    {
        topic = "";
        partition = -1;
        int dash = name.LastIndexOf('-');
        if (dash <= 0 || dash >= name.Length - 1
            || !int.TryParse(name.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out partition))
        {
            return false;
        }

        topic = name.Substring(0, dash);
        return true;
    }

    /// <summary>True for a 20-digit file name stem (segment, index and snapshot files).</summary>
    public static bool TryParseOffsetName(string path, out long offset)
    {
        string name = System.IO.Path.GetFileNameWithoutExtension(path);
        offset = -1;
        return name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out offset);
    }

    /// <summary>The segments of a partition directory in base-offset order (files named as the store names them).</summary>
    public static List<SegmentFile> ListSegments(string partitionDirectory)
    {
        var list = new List<SegmentFile>();
        if (!Directory.Exists(partitionDirectory))
        {
            return list;
        }

        foreach (string file in Directory.GetFiles(partitionDirectory, "*.log"))
        {
            if (TryParseOffsetName(file, out long baseOffset))
            {
                list.Add(new SegmentFile(baseOffset, file));
            }
        }

        list.Sort(static (a, b) => a.BaseOffset.CompareTo(b.BaseOffset));
        return list;
    }

    /// <summary>A path relative to the data directory, for messages.</summary>
    public string Relative(string path)
    {
        string relative = System.IO.Path.GetRelativePath(Path, path);
        return relative.StartsWith("..", StringComparison.Ordinal) ? path : relative;
    }
}
