using System.Globalization;
using Microsoft.Extensions.ObjectPool;
using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog;

/// <summary>
/// A TxLog data directory: topics of partitions, each a segmented log in Kafka's RecordBatch v2
/// format. <see cref="Open"/> takes the directory's lock file, reads the topic list and recovers
/// every partition (after a clean close nothing is scanned; after a crash each partition's last
/// segment is validated and a torn tail truncated). <see cref="Dispose"/> flushes, writes the
/// clean-shutdown marker and releases the lock.
/// Layout: <c>.lock</c>, <c>.clean_shutdown</c> (present only while closed cleanly),
/// <c>topics.meta</c>, and one directory <c>{topic}-{partition}</c> per partition.
/// Thread-safe: all members may be called concurrently.
/// </summary>
public sealed class LogStore : IDisposable, IAsyncDisposable
{
    /// <summary>Name of the lock file that gives one store exclusive use of the directory.</summary>
    public const string LockFileName = ".lock";

    /// <summary>Name of the marker written at a clean close and removed at open.</summary>
    public const string CleanShutdownFileName = ".clean_shutdown";

    private readonly IFileSystem _fileSystem;
    private readonly IDisposable _lock;
    private readonly object _topicsLock = new();
    private readonly Dictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly ObjectPool<RecordBatchBuilder> _builders =
        new DefaultObjectPool<RecordBatchBuilder>(new DefaultPooledObjectPolicy<RecordBatchBuilder>(), Environment.ProcessorCount * 4);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _background;
    private int _disposed;

    private LogStore(string directory, LogStoreOptions options, IDisposable directoryLock)
    {
        Directory = directory;
        Options = options;
        _fileSystem = options.FileSystem;
        _lock = directoryLock;
    }

    /// <summary>The data directory (full path).</summary>
    public string Directory { get; }

    /// <summary>The settings the store was opened with.</summary>
    public LogStoreOptions Options { get; }

    /// <summary>What recovery did when the store opened.</summary>
    public RecoveryReport Recovery { get; } = new();

    /// <summary>
    /// Opens (creating if needed) the store in <paramref name="directory"/>.
    /// </summary>
    /// <exception cref="LogDirectoryLockedException">Another store has the directory open.</exception>
    /// <exception cref="CorruptRecordException">A batch inside committed data is corrupt (file and position named).</exception>
    /// <exception cref="CorruptIndexException">The topic list is corrupt.</exception>
    public static LogStore Open(string directory, LogStoreOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        options ??= new LogStoreOptions();
        options.Validate();
        IFileSystem fs = options.FileSystem;
        directory = Path.GetFullPath(directory);
        fs.CreateDirectory(directory);
        IDisposable directoryLock = fs.TryLock(Path.Combine(directory, LockFileName))
            ?? throw new LogDirectoryLockedException(directory, null);
        var store = new LogStore(directory, options, directoryLock);
        try
        {
            store.Load();
        }
        catch
        {
            store.CloseWithoutFlush();
            throw;
        }

        return store;
    }

    private void Load()
    {
        string marker = Path.Combine(Directory, CleanShutdownFileName);
        bool clean = _fileSystem.FileExists(marker);
        Recovery.CleanShutdown = clean;
        List<TopicDescription> topics = StoreMetadata.Read(_fileSystem, Directory);
        var known = new HashSet<string>(StringComparer.Ordinal);
        foreach (TopicDescription topic in topics)
        {
            var state = new TopicState(topic, new LogPartition[topic.Partitions]);
            _topics.Add(topic.Name, state);
            for (int p = 0; p < topic.Partitions; p++)
            {
                string dir = PartitionDirectory(topic.Name, p);
                known.Add(dir);
                PartitionLog log = PartitionLog.Open(_fileSystem, dir, topic.Name, p, ConfigFor(topic.Options), Options.TimeProvider,
                    Options.Durability == DurabilityMode.None, trustTail: clean, Recovery);
                state.Partitions[p] = new LogPartition(this, log);
            }
        }

        // Directories of topics deleted just before a crash (the topic list is updated first).
        foreach (string dir in _fileSystem.GetDirectories(Directory))
        {
            if (!known.Contains(dir) && LooksLikePartitionDirectory(Path.GetFileName(dir)))
            {
                _fileSystem.DeleteDirectory(dir);
                Recovery.Add($"{dir}: deleted the directory of a topic that no longer exists");
            }
        }

        // From here on a crash must be detected as unclean.
        if (clean)
        {
            _fileSystem.DeleteFile(marker);
            _fileSystem.SyncDirectory(Directory);
        }

        _background = Task.Run(() => BackgroundLoopAsync(_stopping.Token));
    }

    private static bool LooksLikePartitionDirectory(string name)
    {
        int dash = name.LastIndexOf('-');
        return dash > 0 && dash < name.Length - 1
            && int.TryParse(name.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    private string PartitionDirectory(string topic, int partition) =>
        Path.Combine(Directory, topic + "-" + partition.ToString(CultureInfo.InvariantCulture));

    private LogConfig ConfigFor(TopicOptions topic) => new()
    {
        SegmentBytes = topic.SegmentBytes ?? Options.SegmentBytes,
        SegmentAge = topic.SegmentAge ?? Options.SegmentAge,
        MaxIndexBytes = Options.MaxIndexBytes,
        IndexIntervalBytes = Options.IndexIntervalBytes,
        RetentionBytes = topic.RetentionBytes ?? Options.RetentionBytes,
        RetentionTime = topic.RetentionTime ?? Options.RetentionTime,
        MaxBatchBytes = Options.MaxBatchBytes,
        PreallocateBytes = Options.PreallocateBytes,
    };

    /// <summary>Creates a topic with <paramref name="partitions"/> partitions.</summary>
    /// <param name="name">Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".</param>
    /// <param name="partitions">Number of partitions (1 or more).</param>
    /// <param name="options">Overrides of the store's segment and retention settings.</param>
    /// <exception cref="ArgumentException">The name or the partition count is not valid (checked before any file is touched).</exception>
    /// <exception cref="TopicAlreadyExistsException">The topic exists.</exception>
    public void CreateTopic(string name, int partitions = 1, TopicOptions? options = null)
    {
        TopicName.Validate(name, nameof(name));
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(partitions, 100_000);
        options ??= new TopicOptions();
        ValidateTopicOptions(options);
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            if (_topics.ContainsKey(name))
            {
                throw new TopicAlreadyExistsException(name);
            }

            var description = new TopicDescription(name, partitions, options);
            var list = new List<TopicDescription>(_topics.Count + 1);
            foreach (TopicState t in _topics.Values)
            {
                list.Add(t.Description);
            }

            list.Add(description);

            // The topic list is durable before the directories exist: a crash in between leaves a
            // topic whose partitions are created empty at the next open.
            StoreMetadata.Write(_fileSystem, Directory, list);
            var state = new TopicState(description, new LogPartition[partitions]);
            try
            {
                for (int p = 0; p < partitions; p++)
                {
                    PartitionLog log = PartitionLog.Open(_fileSystem, PartitionDirectory(name, p), name, p, ConfigFor(options), Options.TimeProvider,
                        Options.Durability == DurabilityMode.None, trustTail: false, new RecoveryReport());
                    state.Partitions[p] = new LogPartition(this, log);
                }
            }
            catch
            {
                foreach (LogPartition? partition in state.Partitions)
                {
                    partition?.Log.Dispose();
                }

                throw;
            }

            _fileSystem.SyncDirectory(Directory);
            _topics.Add(name, state);
        }
    }

    private static void ValidateTopicOptions(TopicOptions options)
    {
        if (options.SegmentBytes is { } segmentBytes)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(segmentBytes, RecordBatchLayout.HeaderSize + 1, "options.SegmentBytes");
            ArgumentOutOfRangeException.ThrowIfGreaterThan(segmentBytes, (long)int.MaxValue + 1, "options.SegmentBytes");
        }

        if (options.RetentionBytes is { } retentionBytes)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(retentionBytes, "options.RetentionBytes");
        }

        if (options.SegmentAge is { } age && age <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException("options.SegmentAge", age, "Must be positive.");
        }

        if (options.RetentionTime is { } retention && retention <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException("options.RetentionTime", retention, "Must be positive.");
        }
    }

    /// <summary>Deletes a topic and all its data.</summary>
    /// <exception cref="TopicNotFoundException">No such topic.</exception>
    public void DeleteTopic(string name)
    {
        TopicName.Validate(name, nameof(name));
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            if (!_topics.TryGetValue(name, out TopicState? state))
            {
                throw new TopicNotFoundException(name);
            }

            var list = new List<TopicDescription>(_topics.Count);
            foreach (TopicState t in _topics.Values)
            {
                if (!ReferenceEquals(t, state))
                {
                    list.Add(t.Description);
                }
            }

            // The topic list first: a crash after it leaves orphan directories, which open deletes.
            StoreMetadata.Write(_fileSystem, Directory, list);
            _topics.Remove(name);
            for (int p = 0; p < state.Partitions.Length; p++)
            {
                state.Partitions[p].Log.Dispose();
                _fileSystem.DeleteDirectory(PartitionDirectory(name, p));
            }

            _fileSystem.SyncDirectory(Directory);
        }
    }

    /// <summary>The topics, in name order.</summary>
    public IReadOnlyList<TopicDescription> ListTopics()
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            var list = new List<TopicDescription>(_topics.Count);
            foreach (TopicState t in _topics.Values)
            {
                list.Add(t.Description);
            }

            list.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            return list;
        }
    }

    /// <summary>True when the topic exists.</summary>
    public bool TopicExists(string name)
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            return _topics.ContainsKey(name);
        }
    }

    /// <summary>Returns a partition of a topic.</summary>
    /// <exception cref="TopicNotFoundException">No such topic.</exception>
    /// <exception cref="ArgumentOutOfRangeException">No such partition.</exception>
    public LogPartition GetPartition(string topic, int partition)
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            if (!_topics.TryGetValue(topic, out TopicState? state))
            {
                throw new TopicNotFoundException(topic);
            }

            if ((uint)partition >= (uint)state.Partitions.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(partition), partition, $"Topic '{topic}' has partitions 0 to {state.Partitions.Length - 1}.");
            }

            return state.Partitions[partition];
        }
    }

    /// <summary>Fsyncs every partition.</summary>
    public async ValueTask FlushAsync()
    {
        foreach (LogPartition partition in AllPartitions())
        {
            await partition.FlushAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Applies retention to every partition now; returns the number of segments deleted.</summary>
    public int EnforceRetention()
    {
        int deleted = 0;
        foreach (LogPartition partition in AllPartitions())
        {
            deleted += partition.Log.EnforceRetention();
        }

        return deleted;
    }

    private List<LogPartition> AllPartitions()
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            var all = new List<LogPartition>();
            foreach (TopicState t in _topics.Values)
            {
                all.AddRange(t.Partitions);
            }

            return all;
        }
    }

    // Periodic fsyncs (Periodic mode) and retention, until the store closes.
    private async Task BackgroundLoopAsync(CancellationToken token)
    {
        TimeProvider time = Options.TimeProvider;
        TimeSpan flushEvery = Options.Durability == DurabilityMode.Periodic ? Options.FlushInterval : Timeout.InfiniteTimeSpan;
        long nextRetention = time.GetTimestamp() + (long)(Options.RetentionCheckInterval.TotalSeconds * time.TimestampFrequency);
        while (!token.IsCancellationRequested)
        {
            TimeSpan wait = flushEvery == Timeout.InfiniteTimeSpan ? Options.RetentionCheckInterval : flushEvery;
            try
            {
                await Task.Delay(wait, time, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            List<LogPartition> partitions;
            try
            {
                partitions = AllPartitions();
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            foreach (LogPartition partition in partitions)
            {
                try
                {
                    if (flushEvery != Timeout.InfiniteTimeSpan)
                    {
                        partition.Log.Sync();
                    }

                    if (time.GetTimestamp() >= nextRetention)
                    {
                        partition.Log.EnforceRetention();
                    }
                }
                catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException)
                {
                    // The partition recorded its failure and refuses further writes; callers see it.
                }
            }

            if (time.GetTimestamp() >= nextRetention)
            {
                nextRetention = time.GetTimestamp() + (long)(Options.RetentionCheckInterval.TotalSeconds * time.TimestampFrequency);
            }
        }
    }

    internal long NowMs() => Options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds();

    internal RecordBatchBuilder RentBuilder() => _builders.Get();

    internal void ReturnBuilder(RecordBatchBuilder builder) => _builders.Return(builder);

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>
    /// Flushes every partition, persists the active segments' indexes, writes the clean-shutdown
    /// marker and releases the directory lock. Waits at most <see cref="LogStoreOptions.CloseTimeout"/>
    /// for background work and in-flight fsyncs; if that runs out, the store closes without the
    /// marker (the next open recovers) and a <see cref="TimeoutException"/> is thrown.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopping.Cancel();
        bool clean = true;
        try
        {
            clean &= _background?.Wait(Options.CloseTimeout) ?? true;
        }
        catch (AggregateException)
        {
            clean = false;
        }

        List<LogPartition> partitions = [];
        lock (_topicsLock)
        {
            foreach (TopicState t in _topics.Values)
            {
                partitions.AddRange(t.Partitions);
            }
        }

        foreach (LogPartition partition in partitions)
        {
            clean &= partition.Log.Close(Options.CloseTimeout);
        }

        try
        {
            if (clean)
            {
                AtomicFile.Write(_fileSystem, Path.Combine(Directory, CleanShutdownFileName), "clean\n"u8);
            }
        }
        catch (IOException)
        {
            clean = false;
        }
        finally
        {
            _lock.Dispose();
            _stopping.Dispose();
        }

        if (!clean)
        {
            bool failed = false;
            foreach (LogPartition partition in partitions)
            {
                failed |= partition.Log.Failure is not null;
            }

            if (!failed)
            {
                throw new TimeoutException($"Closing the store in '{Directory}' did not finish within {Options.CloseTimeout}; it was closed without the clean-shutdown marker and will be recovered at the next open.");
            }
        }
    }

    /// <summary>Closes the store (see <see cref="Dispose"/>) on a pool thread.</summary>
    public ValueTask DisposeAsync() => new(Task.Run(Dispose));

    private void CloseWithoutFlush()
    {
        Volatile.Write(ref _disposed, 1);
        _stopping.Cancel();
        foreach (TopicState t in _topics.Values)
        {
            foreach (LogPartition? partition in t.Partitions)
            {
                partition?.Log.Dispose();
            }
        }

        _lock.Dispose();
    }

    private sealed record TopicState(TopicDescription Description, LogPartition[] Partitions);
}
