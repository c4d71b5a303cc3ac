using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ObjectPool;
using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Diagnostics;
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
public sealed partial class LogStore : IDisposable, IAsyncDisposable
{
    /// <summary>Name of the lock file that gives one store exclusive use of the directory.</summary>
    public const string LockFileName = ".lock";

    /// <summary>Name of the marker written at a clean close and removed at open.</summary>
    public const string CleanShutdownFileName = ".clean_shutdown";

    private readonly SealableFileSystem _fileSystem;
    private readonly IDisposable _lock;
    private readonly object _topicsLock = new();
    private readonly Dictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly ObjectPool<RecordBatchBuilder> _builders =
        new DefaultObjectPool<RecordBatchBuilder>(new DefaultPooledObjectPolicy<RecordBatchBuilder>(), Environment.ProcessorCount * 4);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _background;
    private int _disposed;
    private readonly TaskCompletionSource _closing = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private LogStore(string directory, LogStoreOptions options, IDisposable directoryLock)
    {
        Directory = directory;
        Options = options;
        _fileSystem = new SealableFileSystem(options.FileSystem);
        _lock = directoryLock;
        Telemetry = new StoreTelemetry(directory, options.LoggerFactory, options.SlowFsyncThreshold);
        Recovery.Logger = Telemetry.Logger;
    }

    /// <summary>The store's logger and instruments.</summary>
    internal StoreTelemetry Telemetry { get; }

    /// <summary>The data directory (full path).</summary>
    public string Directory { get; }

    /// <summary>The settings the store was opened with.</summary>
    public LogStoreOptions Options { get; }

    /// <summary>What recovery did when the store opened.</summary>
    public RecoveryReport Recovery { get; } = new();

    /// <summary>
    /// Opens (creating if needed) the store in <paramref name="directory"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (checked before anything is touched).</exception>
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
        IDisposable? directoryLock = fs.TryLock(Path.Combine(directory, LockFileName));
        if (directoryLock is null)
        {
            if (options.LoggerFactory is { } loggers)
            {
                LogMessages.DirectoryLocked(loggers.CreateLogger("TxLog"), directory);
            }

            throw new LogDirectoryLockedException(directory, null);
        }

        var store = new LogStore(directory, options, directoryLock);
        long started = Stopwatch.GetTimestamp();
        using Activity? span = store.Telemetry.StartActivity("txlog.recovery");
        try
        {
            store.Load();
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            store.CloseWithoutFlush();
            throw;
        }

        store.ReportOpened(started, span);
        return store;
    }

    private void Load()
    {
        string marker = Path.Combine(Directory, CleanShutdownFileName);
        bool clean = _fileSystem.FileExists(marker);
        Recovery.CleanShutdown = clean;
        if (clean)
        {
            // Before anything is written (recovery itself writes: markers of transactions the last
            // session left open, restated internal logs): a crash from here on must be detected as
            // unclean, or the next open would trust files (a .txnindex entry, an index) that were
            // written but never fsynced.
            _fileSystem.DeleteFile(marker);
            _fileSystem.SyncDirectory(Directory);
        }

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
                PartitionLog log = PartitionLog.Open(_fileSystem, dir, topic.Name, p, ConfigFor(topic.Name, topic.Options), Options.TimeProvider,
                    Options.Durability == DurabilityMode.None, trustTail: clean, Recovery);
                var partition = new LogPartition(this, log);
                state.Partitions[p] = partition;
                partition.LoadProducerState(clean, Recovery);
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

        // The internal logs: coordinator state and consumer offsets are ordinary partitions.
        foreach (string internalTopic in (ReadOnlySpan<string>)[TransactionCoordinator.TopicName, GroupCoordinator.TopicName])
        {
            if (!_topics.ContainsKey(internalTopic))
            {
                CreateTopic(internalTopic, 1);
            }
        }

        Coordinator = TransactionCoordinator.Open(this, Recovery);
        Groups = GroupCoordinator.Open(this, Recovery);
        Membership = new ConsumerGroupMembership(
            topic =>
            {
                lock (_topicsLock)
                {
                    return _topics.TryGetValue(topic, out TopicState? state) ? state.Partitions.Length : null;
                }
            },
            Groups,
            (member, idleMs, partitions) => LogMessages.ConsumerGroupMemberEvicted(Telemetry.Logger, member.Group.Id, member.Id, idleMs, member.MaxPollMs, partitions));

        _background = NoFlow.Run(() => BackgroundLoopAsync(_stopping.Token));
    }

    private static bool LooksLikePartitionDirectory(string name)
    {
        int dash = name.LastIndexOf('-');
        return dash > 0 && dash < name.Length - 1
            && int.TryParse(name.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _);
    }

    private string PartitionDirectory(string topic, int partition) =>
        Path.Combine(Directory, topic + "-" + partition.ToString(CultureInfo.InvariantCulture));

    // Internal topics never take the store's retention: their data is deleted only by their owners
    // (MVCC checkpoints trim __mvcc_redo; the coordinator restates its log), never by size or age.
    private LogConfig ConfigFor(string name, TopicOptions topic) => new()
    {
        SegmentBytes = topic.SegmentBytes ?? Options.SegmentBytes,
        SegmentAge = topic.SegmentAge ?? Options.SegmentAge,
        MaxIndexBytes = Options.MaxIndexBytes,
        IndexIntervalBytes = Options.IndexIntervalBytes,
        RetentionBytes = IsInternalTopic(name) ? null : topic.RetentionBytes ?? Options.RetentionBytes,
        RetentionTime = IsInternalTopic(name) ? null : topic.RetentionTime ?? Options.RetentionTime,
        MaxBatchBytes = Options.MaxBatchBytes,
        PreallocateBytes = Options.PreallocateBytes,
        Telemetry = Telemetry,
    };

    /// <summary>Creates a topic with <paramref name="partitions"/> partitions.</summary>
    /// <param name="name">Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".</param>
    /// <param name="partitions">Number of partitions (1 or more).</param>
    /// <param name="options">Overrides of the store's segment and retention settings.</param>
    /// <exception cref="ArgumentException">The name or the partition count is not valid (checked before any file is touched).</exception>
    /// <exception cref="TopicAlreadyExistsException">The topic exists.</exception>
    public void CreateTopic(string name, int partitions = 1, TopicOptions? options = null)
    {
        CreateTopicUntold(name, partitions, options);
        Membership?.TopicChanged(name); // outside the topics lock (the membership takes it to count partitions)
    }

    // CreateTopic without telling the membership: a caller that holds the topics lock tells it after
    // releasing that lock (lock order: membership lock, then topics lock; never the reverse).
    private void CreateTopicUntold(string name, int partitions, TopicOptions? options)
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

            if (Coordinator is not null && IsInternalTopic(name))
            {
                throw new ArgumentException($"'{name}' is an internal topic of the store.", nameof(name));
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
                    PartitionLog log = PartitionLog.Open(_fileSystem, PartitionDirectory(name, p), name, p, ConfigFor(name, options), Options.TimeProvider,
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

    /// <summary>
    /// Deletes a topic and all its data. Transactions that wrote to it must be finished first; the
    /// coordinator's records of finished ones are made durable before the topic goes.
    /// </summary>
    /// <exception cref="TopicNotFoundException">No such topic.</exception>
    /// <exception cref="Producers.InvalidTransactionStateException">A transaction that wrote to the topic is still open or completing; commit or abort it first.</exception>
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

            if (IsInternalTopic(name))
            {
                throw new ArgumentException($"'{name}' is an internal topic of the store and cannot be deleted.", nameof(name));
            }

            foreach (LogPartition partition in state.Partitions)
            {
                partition.Retired = true;
            }

            try
            {
                Coordinator.PrepareTopicDeletion(name);
                Groups.DeleteTopicOffsets(name); // before the topic list: a deleted topic never keeps committed offsets
            }
            catch
            {
                foreach (LogPartition partition in state.Partitions)
                {
                    partition.Retired = false;
                }

                throw;
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
                LogPartition partition = state.Partitions[p];
                // Under the append lock: an append in flight finishes first, including the producer-state
                // snapshot its roll writes after the log took the batch (written into a directory being
                // deleted, it made the deletion fail and stayed behind for a topic created again).
                lock (partition.AppendLock)
                {
                    partition.MarkDeleted(); // consumers find the topic gone (and waiting ones wake)
                    partition.GroupCommit.Dispose();
                    partition.Log.Dispose();
                }

                _fileSystem.DeleteDirectory(PartitionDirectory(name, p));
            }

            _fileSystem.SyncDirectory(Directory);
        }

        Membership.TopicChanged(name); // subscribed members drop its partitions at their next poll
    }

    /// <summary>True for the store's internal topics (<c>__transaction_state</c>, <c>__consumer_offsets</c>, <c>__mvcc_redo</c>).</summary>
    public static bool IsInternalTopic(string name) =>
        name is TransactionCoordinator.TopicName or GroupCoordinator.TopicName or Mvcc.TransactionEngine.RedoTopic;

    /// <summary>Creates an internal topic (one partition) if missing and returns its partition.</summary>
    internal LogPartition EnsureInternalTopic(string name)
    {
        LogPartition partition;
        bool created = false;
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            if (!_topics.ContainsKey(name))
            {
                TransactionCoordinator? coordinator = Coordinator;
                Coordinator = null!; // CreateTopic refuses internal names once the coordinator runs
                try
                {
                    CreateTopicUntold(name, 1, null);
                    created = true;
                }
                finally
                {
                    Coordinator = coordinator!;
                }
            }

            partition = _topics[name].Partitions[0];
        }

        // Outside the topics lock: TopicChanged takes the membership lock, and Join (Leave, evictions,
        // TopicChanged) takes the topics lock under it to count partitions.
        if (created)
        {
            Membership?.TopicChanged(name);
        }

        return partition;
    }

    private Mvcc.TransactionEngine? _engine;

    /// <summary>
    /// Opens the MVCC transaction engine of this store (once; later calls return the same engine and
    /// ignore <paramref name="options"/>). Recovery runs here: newest valid checkpoint plus committed redo.
    /// </summary>
    public Mvcc.TransactionEngine OpenTransactionEngine(Mvcc.MvccOptions? options = null)
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
        }

        lock (_engineLock)
        {
            return _engine ??= Mvcc.TransactionEngine.Open(this, options ?? new Mvcc.MvccOptions());
        }
    }

    private readonly object _engineLock = new();

    /// <summary>The topics, in name order; the internal ones only when asked for (as in Kafka's listTopics).</summary>
    public IReadOnlyList<TopicDescription> ListTopics(bool includeInternal = false)
    {
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            var list = new List<TopicDescription>(_topics.Count);
            foreach (TopicState t in _topics.Values)
            {
                if (includeInternal || !IsInternalTopic(t.Description.Name))
                {
                    list.Add(t.Description);
                }
            }

            list.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            return list;
        }
    }

    /// <summary>True when the topic exists.</summary>
    public bool TopicExists(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
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
        ArgumentNullException.ThrowIfNull(topic);
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

    /// <summary>
    /// The partitions of a topic, read together: a partition chosen from this array belongs to the topic
    /// its count came from (if the topic is deleted meanwhile, writes to it fail with
    /// <see cref="TopicNotFoundException"/>). Callers must not modify the array.
    /// </summary>
    /// <exception cref="TopicNotFoundException">No such topic.</exception>
    internal LogPartition[] GetPartitions(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            return _topics.TryGetValue(topic, out TopicState? state) ? state.Partitions : throw new TopicNotFoundException(topic);
        }
    }

    /// <summary>Number of partitions of a topic.</summary>
    /// <exception cref="TopicNotFoundException">No such topic.</exception>
    public int PartitionCount(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        lock (_topicsLock)
        {
            ThrowIfDisposed();
            return _topics.TryGetValue(topic, out TopicState? state) ? state.Partitions.Length : throw new TopicNotFoundException(topic);
        }
    }

    /// <summary>
    /// Creates a producer. Without <see cref="Producers.ProducerOptions.TransactionalId"/> it is an
    /// idempotent producer with a fresh producer id; with one, call
    /// <see cref="Producers.Producer.InitTransactionsAsync"/> next.
    /// </summary>
    public async ValueTask<Producers.Producer> CreateProducerAsync(Producers.ProducerOptions? options = null)
    {
        ThrowIfDisposed();
        options ??= new Producers.ProducerOptions();
        if (options.TransactionalId is { } id && string.IsNullOrEmpty(id))
        {
            throw new ArgumentException("A transactional id cannot be empty.", nameof(options));
        }

        if (options.TransactionTimeout <= TimeSpan.Zero || options.TransactionTimeout > TimeSpan.FromMilliseconds(int.MaxValue))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.TransactionTimeout, "TransactionTimeout must be positive and at most int.MaxValue ms.");
        }

        ArgumentNullException.ThrowIfNull(options.Partitioner, "options.Partitioner");
        var producer = new Producers.Producer(this, options);
        if (options.TransactionalId is null)
        {
            await producer.InitializeIdempotentAsync().ConfigureAwait(false);
        }

        return producer;
    }

    /// <summary>
    /// Begins one transaction over maps and partitions (see <see cref="StoreTransaction"/>) on a
    /// transactional producer (after its InitTransactions) and the store's MVCC engine.
    /// </summary>
    /// <exception cref="ArgumentException">The producer belongs to another store.</exception>
    public StoreTransaction BeginTransaction(Producers.Producer producer, Mvcc.TransactionIsolation isolation = Mvcc.TransactionIsolation.RepeatableRead)
    {
        ArgumentNullException.ThrowIfNull(producer);
        if (!ReferenceEquals(producer.Store, this))
        {
            // Its coordinator would take this store's redo partition into its transaction: the commit
            // failed half-way and left an undecided batch here that held the redo's LSO until the next open.
            throw new ArgumentException("The producer was created by another store; use a producer of this store.", nameof(producer));
        }

        ThrowIfDisposed();
        Mvcc.TransactionEngine engine = _engine ?? throw new InvalidOperationException("Open the transaction engine first (OpenTransactionEngine).");
        long generation = producer.BeginTransactionInternal();
        return new StoreTransaction(this, engine, producer, generation, engine.BeginTransaction(isolation));
    }

    /// <summary>
    /// Captures, for the given partitions, the read-committed end offsets at one instant: every committed
    /// transaction is either below the cut on all of its partitions or above it on all of them. Read each
    /// partition with <see cref="LogPartition.OpenReader(long, ConsistentCut)"/>. To include the
    /// transactional maps, use <see cref="CaptureSnapshot"/>.
    /// </summary>
    public ConsistentCut CaptureCut(params IEnumerable<TopicPartition> partitions) => CaptureAtOneInstant(partitions, static cut => cut);

    /// <summary>
    /// A consistent cut across partitions and maps: the read-committed end offsets of
    /// <paramref name="partitions"/> and a RepeatableRead transaction of the MVCC engine, taken at one
    /// instant, so a unified transaction is in both or in neither. Dispose the snapshot's
    /// <see cref="StoreSnapshot.Maps"/> transaction when done.
    /// </summary>
    public StoreSnapshot CaptureSnapshot(params IEnumerable<TopicPartition> partitions)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        Mvcc.TransactionEngine engine = _engine ?? throw new InvalidOperationException("Open the transaction engine first (OpenTransactionEngine).");
        return CaptureAtOneInstant(partitions, cut => new StoreSnapshot(cut, engine.BeginTransaction(Mvcc.TransactionIsolation.RepeatableRead)));
    }

    // The read-committed ends of the partitions, and whatever `complete` adds, with no transaction's
    // visibility changing meanwhile (partitions are resolved first, so a bad name throws before the freeze).
    private T CaptureAtOneInstant<T>(IEnumerable<TopicPartition> partitions, Func<ConsistentCut, T> complete)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var targets = new List<(TopicPartition, LogPartition)>();
        foreach (TopicPartition tp in partitions)
        {
            targets.Add((tp, GetPartition(tp.Topic, tp.Partition)));
        }

        return Coordinator.WithVisibilityFrozen(() =>
        {
            var ends = new Dictionary<TopicPartition, long>(targets.Count);
            var captured = new Dictionary<TopicPartition, LogPartition>(targets.Count);
            foreach ((TopicPartition tp, LogPartition p) in targets)
            {
                ends[tp] = p.LastStableOffset;
                captured[tp] = p;
            }

            return complete(new ConsistentCut(this, ends, captured));
        });
    }

    /// <summary>Creates a consumer (see <see cref="Consuming.Consumer"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option holds an undefined enum value.</exception>
    public Consuming.Consumer CreateConsumer(Consuming.ConsumerOptions? options = null)
    {
        ThrowIfDisposed();
        options ??= new Consuming.ConsumerOptions();
        if (!Enum.IsDefined(options.Isolation))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Isolation, "ConsumerOptions.Isolation is not an IsolationLevel.");
        }

        if (!Enum.IsDefined(options.AutoOffsetReset))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.AutoOffsetReset, "ConsumerOptions.AutoOffsetReset is not an AutoOffsetReset value.");
        }

        if (options.MaxPollInterval <= TimeSpan.Zero && options.MaxPollInterval != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.MaxPollInterval, "ConsumerOptions.MaxPollInterval must be positive (or Timeout.InfiniteTimeSpan).");
        }

        return new Consuming.Consumer(this, options);
    }

    /// <summary>Fsyncs every partition (a topic deleted while this runs is skipped).</summary>
    public async ValueTask FlushAsync()
    {
        foreach (LogPartition partition in AllPartitions())
        {
            try
            {
                await partition.FlushAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is ObjectDisposedException or LogWriteException && partition.Deleted)
            {
                // Its topic was deleted after the list was taken (DeleteTopic marks it before closing it):
                // closed before its flush (ObjectDisposedException), or during it (the fsync then fails on the
                // closed file). Its data is gone either way.
            }
        }
    }

    /// <summary>
    /// Applies retention to every partition now; returns the number of segments deleted. A partition
    /// that stopped after an I/O failure (it refuses writes until the store is reopened, and the failure
    /// was reported to the operation that met it) is skipped, as the background retention skips it, and
    /// so is a partition whose topic is deleted while this runs.
    /// </summary>
    /// <exception cref="IOException">Deleting a segment's files failed on some partition. It is thrown after
    /// every other partition was trimmed (the first such error when there are several); the partition
    /// itself keeps working.</exception>
    /// <exception cref="UnauthorizedAccessException">As <see cref="IOException"/>, for a permission error.</exception>
    /// <exception cref="ObjectDisposedException">The store is closed.</exception>
    public int EnforceRetention()
    {
        int deleted = 0;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? firstError = null;
        foreach (LogPartition partition in AllPartitions())
        {
            try
            {
                deleted += partition.Log.EnforceRetention();
            }
            catch (ObjectDisposedException) when (partition.Deleted)
            {
                // Its topic was deleted after the list was taken (DeleteTopic marks it before closing it).
            }
            catch (LogWriteException) when (partition.Log.Failure is not null)
            {
                // Failed earlier: it takes no writes, so it cannot grow, and its failure was reported.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Reported once the others are trimmed: one partition's disk error must not stop retention elsewhere.
                firstError ??= System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e);
            }
        }

        firstError?.Throw();
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

    // Periodic fsyncs (Periodic mode), retention and the live restatement of __consumer_offsets (checked
    // at every pass: every FlushInterval in Periodic mode, else every RetentionCheckInterval), until the
    // store closes. Dispose waits for a pass in progress before it closes the partitions.
    private async Task BackgroundLoopAsync(CancellationToken token)
    {
        TimeProvider time = Options.TimeProvider;
        TimeSpan flushEvery = Options.Durability == DurabilityMode.Periodic ? Options.FlushInterval : Timeout.InfiniteTimeSpan;
        long nextRetention = time.GetTimestamp() + (long)(Options.RetentionCheckInterval.TotalSeconds * time.TimestampFrequency);
        Task? delay = null;
        while (!token.IsCancellationRequested)
        {
            TimeSpan wait = flushEvery == Timeout.InfiniteTimeSpan ? Options.RetentionCheckInterval : flushEvery;
            delay ??= Task.Delay(wait, time, token);
            await Task.WhenAny(delay, _backgroundWake.WaitTask).ConfigureAwait(false);
            if (token.IsCancellationRequested)
            {
                return;
            }

            if (!delay.IsCompleted)
            {
                // Woken early: __consumer_offsets grew past its wake threshold (the timed pass keeps its time).
                Groups.RestateFromTimer(); // never throws
                continue;
            }

            delay = null;

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

            if (!token.IsCancellationRequested)
            {
                Groups.RestateFromTimer(); // never throws
                EvictIdleConsumers(); // members nobody polls for (e.g. a consumer dropped without Dispose)
            }

            if (time.GetTimestamp() >= nextRetention)
            {
                nextRetention = time.GetTimestamp() + (long)(Options.RetentionCheckInterval.TotalSeconds * time.TimestampFrequency);
            }
        }
    }

    internal IFileSystem FileSystem => _fileSystem;

    private readonly AsyncSignal _backgroundWake = new();

    private void EvictIdleConsumers()
    {
        try
        {
            Membership.EvictIdle(null, MonotonicMs());
        }
        catch (Exception)
        {
            // A throwing logger must not end the background loop.
        }
    }

    /// <summary>Asks the background loop for a restatement pass of <c>__consumer_offsets</c> now.</summary>
    internal void WakeBackground() => _backgroundWake.Pulse();

    /// <summary>The transaction coordinator (set during open).</summary>
    internal TransactionCoordinator Coordinator { get; private set; } = null!;

    /// <summary>The consumer-group offsets (set during open).</summary>
    internal GroupCoordinator Groups { get; private set; } = null!;

    /// <summary>The members of the consumer groups and their partitions (set during open).</summary>
    internal ConsumerGroupMembership Membership { get; private set; } = null!;

    /// <summary>Every partition of every topic (internal ones included).</summary>
    internal List<LogPartition> AllPartitionsInternal() => AllPartitions();

    /// <summary>The partition, or false when the topic or partition does not exist.</summary>
    internal bool TryGetPartitionInternal(TopicPartition tp, out LogPartition? partition)
    {
        lock (_topicsLock)
        {
            if (_topics.TryGetValue(tp.Topic, out TopicState? state) && (uint)tp.Partition < (uint)state.Partitions.Length)
            {
                partition = state.Partitions[tp.Partition];
                return true;
            }
        }

        partition = null;
        return false;
    }

    /// <summary>The transactional ids known to the coordinator, with their states and open partitions.</summary>
    public IReadOnlyList<TransactionDescription> ListTransactions()
    {
        ThrowIfDisposed();
        return Coordinator.ListTransactions();
    }

    internal long NowMs() => Options.TimeProvider.GetUtcNow().ToUnixTimeMilliseconds();

    // Milliseconds on the store clock's monotonic timestamp: for in-memory intervals (transaction timeouts,
    // group members' poll deadlines) that a step of the wall clock (NTP, a resumed VM) must neither end
    // early nor stretch.
    internal long MonotonicMs()
    {
        TimeProvider time = Options.TimeProvider;
        return (long)(time.GetTimestamp() * (1000.0 / time.TimestampFrequency));
    }

    internal RecordBatchBuilder RentBuilder() => _builders.Get();

    internal void ReturnBuilder(RecordBatchBuilder builder) => _builders.Return(builder);

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Completes when the store starts closing (after <see cref="ThrowIfDisposed"/> starts throwing).</summary>
    internal Task Closing => _closing.Task;

    /// <summary>
    /// Flushes every partition, persists the active segments' indexes, writes the clean-shutdown
    /// marker and releases the directory lock. Waits at most <see cref="LogStoreOptions.CloseTimeout"/>
    /// in all for background work and in-flight fsyncs; if that runs out, the store closes without the
    /// marker (the next open recovers) and a <see cref="TimeoutException"/> is thrown. From the close on,
    /// the store refuses to change any file, whichever thread asks; when a file operation that started
    /// before (a hung fsync) is still running at the timeout, the directory lock stays held until it
    /// returns (or the process ends), so that no other store can open the directory while this one
    /// might still write to it.
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // One deadline for the whole close, not one CloseTimeout per wait.
        long deadline = Stopwatch.GetTimestamp() + (long)(Options.CloseTimeout.TotalSeconds * Stopwatch.Frequency);
        TimeSpan Remaining() => TimeSpan.FromTicks(Math.Max(0, (long)((deadline - Stopwatch.GetTimestamp()) * ((double)TimeSpan.TicksPerSecond / Stopwatch.Frequency))));

        _closing.TrySetResult(); // waiters that no partition wakes (a consumer with nothing assigned)
        _stopping.Cancel();
        // false: a checkpoint still runs (it writes and trims files). The redo log is fsynced with the partitions below.
        bool clean = _engine?.Close(Remaining(), syncRedo: false) ?? true;
        Coordinator?.Dispose();
        try
        {
            clean &= _background?.Wait(Remaining()) ?? true;
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
            if (!partition.Close(Remaining()))
            {
                clean = false;
                if (!partition.Log.IsDisposed)
                {
                    (_leftOpen ??= []).Add(partition); // its files are released once nothing runs any more
                }
            }
        }

        // From here on no internal writer (a commit's markers, the coordinator's timer, a checkpoint, a
        // flusher thread, preallocation) can change a file. What already runs may finish; only then is
        // the lock released, by whoever finishes last.
        _fileSystem.Seal();
        bool drained = _fileSystem.WaitForDrain(Remaining());
        try
        {
            if (clean && drained)
            {
                // Through the configured file system: the sealed one refuses everything, the close's own last write included.
                AtomicFile.Write(_fileSystem.Inner, Path.Combine(Directory, CleanShutdownFileName), "clean\n"u8);
            }
        }
        catch (IOException)
        {
            clean = false;
        }
        finally
        {
            _stopping.Dispose();
            Telemetry.Dispose(); // the meter; the logger still reports the late release
            if (drained)
            {
                ReleaseLeftOpenFiles();
                _lock.Dispose();
            }
            else
            {
                _fileSystem.WhenDrained(ReleaseLockLate);
                LogMessages.DirectoryLockHeldAfterClose(Telemetry.Logger, Directory, Options.CloseTimeout.TotalMilliseconds);
            }
        }

        if (!drained)
        {
            throw new TimeoutException($"Closing the store in '{Directory}' did not finish within {Options.CloseTimeout}; it was closed without the clean-shutdown marker and will be recovered at the next open. A file operation (such as an fsync) still runs: the directory stays locked until it returns or the process ends.");
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

    // Runs on the thread whose stuck file operation returned last, after the close gave up on it (in the
    // finally of that operation: nothing may escape from here into it).
    private void ReleaseLockLate()
    {
        ReleaseLeftOpenFiles();
        _lock.Dispose();
        try
        {
            LogMessages.DirectoryLockReleased(Telemetry.Logger, Directory);
        }
        catch (Exception)
        {
            // A logger that throws must not turn the operation that just finished into a failure.
        }
    }

    // Partitions whose close gave up (a lock still held at the deadline) keep their file handles; once the
    // file system is sealed and drained nothing can use them for a change any more, so they are closed
    // here (a reader still holding one gets ObjectDisposedException, as after any close).
    private List<LogPartition>? _leftOpen;

    private void ReleaseLeftOpenFiles()
    {
        if (_leftOpen is null)
        {
            return;
        }

        foreach (LogPartition partition in _leftOpen)
        {
            try
            {
                partition.Log.ReleaseFilesAfterSeal();
            }
            catch (Exception)
            {
                // Best effort, on the thread of a file operation that just finished: nothing may escape.
            }
        }
    }

    /// <summary>Closes the store (see <see cref="Dispose"/>) on a pool thread.</summary>
    public ValueTask DisposeAsync() => new(Task.Run(Dispose));

    private void CloseWithoutFlush()
    {
        Volatile.Write(ref _disposed, 1);
        _stopping.Cancel();
        Coordinator?.Dispose();
        foreach (TopicState t in _topics.Values)
        {
            foreach (LogPartition? partition in t.Partitions)
            {
                partition?.Log.Dispose();
            }
        }

        // As in Dispose: the lock goes only once nothing of this store can write any more.
        _fileSystem.Seal();
        _fileSystem.WhenDrained(_lock.Dispose);
        Telemetry.Dispose();
    }

    private sealed record TopicState(TopicDescription Description, LogPartition[] Partitions);
}
