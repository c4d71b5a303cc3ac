using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Mvcc;

/// <summary>
/// The MVCC transaction engine (modelled on Lealone's AOTE): transactions with an isolation level
/// over ordered transactional maps held in memory, row locks with a timeout and deadlock detection,
/// an undo log per transaction (rollback, savepoints), a redo log that is an ordinary partition of
/// the store (<c>__mvcc_redo</c>-0) synced as <see cref="MvccOptions.SyncMode"/> says, checkpoints of
/// the maps, and recovery from the newest valid checkpoint plus the committed redo after it.
/// <para>
/// Commit order: under one short commit lock, a Serializable transaction validates its reads, the
/// transaction gets the next commit timestamp and its redo is appended (so redo order is commit
/// order); then, outside the lock, it waits for durability (Instant) and installs its versions.
/// Readers never see a commit still being installed: a RepeatableRead/Serializable snapshot, and each
/// ReadCommitted read, sees every commit up to the last one assigned when it began except those still
/// in flight, so a commit becomes visible whole, and a writer's finished commit is visible to its own
/// next read even while an older, slower commit is being decided.
/// </para>
/// Thread-safety: thread-safe; each transaction is used by one thread at a time.
/// </summary>
public sealed partial class TransactionEngine : IDisposable
{
    /// <summary>The internal topic holding the redo log.</summary>
    public const string RedoTopic = "__mvcc_redo";

    internal const string CheckpointDirectoryName = "mvcc";
    private static readonly byte[] TxnHeaderKey = [0xFF, 0x01];
    private const byte FinalBatchFlag = 1;

    private readonly LogStore _store;
    private readonly MvccOptions _options;
    private readonly LogPartition _redo;
    private readonly PartitionRedoTarget _plainRedo;   // plain commits append their redo here
    private readonly string _checkpointDirectory;
    private readonly object _mapsLock = new();
    private readonly Dictionary<string, MapCore> _maps = new(StringComparer.Ordinal);
    private readonly object _commitLock = new();
    private readonly List<long> _installing = new();             // commit timestamps assigned, not yet installed; ascending (assigned in order under the commit lock)
    private readonly Queue<(long CommitTs, long Offset)> _redoOffsets = new(); // first redo offset per commit since the last checkpoint, in commit order (struct entries: no allocation per commit)
    private readonly object _snapshotsLock = new();
    private readonly SortedList<long, int> _snapshots = new();      // active snapshot ts -> count (few entries; Keys[0] without allocation)
    private readonly SemaphoreSlim _checkpointGate = new(1, 1);
    private long _lastCommitTs;
    private long _visibleTs;
    // What ReadCommitted/ReadUncommitted reads see: every installed commit, including ones above the
    // prefix `_visibleTs` (so a writer always reads its own finished commit); republished on each install.
    private StrongBox<Snapshot> _committedView = new(new Snapshot(0, []));
    private long _nextTransactionId;
    private long _unsyncedCommits;
    private long _redoBytesSinceCheckpoint;
    private ITimer? _syncTimer;
    private ITimer? _checkpointTimer;
    private int _disposed;

    private TransactionEngine(LogStore store, MvccOptions options, LogPartition redo)
    {
        _store = store;
        _options = options;
        _redo = redo;
        _plainRedo = new PartitionRedoTarget(redo);
        _checkpointDirectory = Path.Combine(store.Directory, CheckpointDirectoryName);
    }

    /// <summary>The settings.</summary>
    public MvccOptions Options => _options;

    /// <summary>Highest commit timestamp below which every commit is visible.</summary>
    public long VisibleTimestamp => Volatile.Read(ref _visibleTs);

    /// <summary>What recovery did: checkpoint used and redo replayed.</summary>
    public string RecoverySummary { get; private set; } = "";

    internal static TransactionEngine Open(LogStore store, MvccOptions options)
    {
        options.Validate();
        LogPartition redo = store.EnsureInternalTopic(RedoTopic);
        var engine = new TransactionEngine(store, options, redo);
        if (!store.FileSystem.DirectoryExists(engine._checkpointDirectory))
        {
            // Its entry in the store directory must be durable before a checkpoint in it lets the
            // redo it covers be deleted: otherwise a power loss takes every checkpoint with it.
            store.FileSystem.CreateDirectory(engine._checkpointDirectory);
            store.FileSystem.SyncDirectory(store.Directory);
        }

        engine.Recover();
        if (options.SyncMode == LogSyncMode.Periodic)
        {
            engine._syncTimer = Diagnostics.NoFlow.CreateTimer(store.Options.TimeProvider, static e => ((TransactionEngine)e!).PeriodicSync(), engine, options.SyncInterval, options.SyncInterval);
        }

        if (options.CheckpointInterval is { } every)
        {
            engine._checkpointTimer = Diagnostics.NoFlow.CreateTimer(store.Options.TimeProvider, static e => ((TransactionEngine)e!).BackgroundCheckpoint(), engine, every, every);
        }

        return engine;
    }

    // ---------------------------------------------------------------- transactions

    /// <summary>Starts a transaction.</summary>
    public MvccTransaction BeginTransaction(TransactionIsolation isolation = TransactionIsolation.RepeatableRead)
    {
        ThrowIfDisposed();
        if (!Enum.IsDefined(isolation))
        {
            throw new ArgumentOutOfRangeException(nameof(isolation));
        }

        long id = Interlocked.Increment(ref _nextTransactionId);
        var snapshot = new Snapshot(0, []);
        if (isolation is TransactionIsolation.RepeatableRead or TransactionIsolation.Serializable)
        {
            // Under the commit lock nothing is installed meanwhile, and the GC bound is registered before
            // any collection can run with a newer visible timestamp (lock order: commit, then snapshots).
            lock (_commitLock)
            {
                snapshot = new Snapshot(_lastCommitTs, InstallingNow());
                lock (_snapshotsLock)
                {
                    long bound = snapshot.GcBound;
                    _snapshots[bound] = _snapshots.GetValueOrDefault(bound) + 1;
                }
            }
        }

        return new MvccTransaction(this, id, isolation, snapshot);
    }

    private void ReleaseSnapshot(MvccTransaction tx)
    {
        if (!tx.UsesSnapshot)
        {
            return;
        }

        lock (_snapshotsLock)
        {
            long bound = tx.Snapshot.GcBound;
            int count = _snapshots[bound] - 1;
            if (count == 0)
            {
                _snapshots.Remove(bound);
            }
            else
            {
                _snapshots[bound] = count;
            }
        }
    }

    // The commit timestamps assigned but not installed yet, ascending (a snapshot skips them). Caller holds the commit lock.
    private long[] InstallingNow() => _installing.Count == 0 ? [] : _installing.ToArray();

    /// <summary>The oldest timestamp any current or future reader can ask for (versions older than the newest one at or below it are garbage).</summary>
    internal long OldestSnapshot()
    {
        long visible = Volatile.Read(ref _visibleTs);
        lock (_snapshotsLock)
        {
            return _snapshots.Count == 0 ? visible : Math.Min(_snapshots.Keys[0], visible);
        }
    }

    // ---------------------------------------------------------------- maps

    /// <summary>Opens (creating on first use) a map with typed keys and values.</summary>
    /// <exception cref="ArgumentException">The name breaks the rule for map names (the topic-name rule).</exception>
    public TransactionalMap<TKey, TValue> OpenMap<TKey, TValue>(string name, ISerializer<TKey> keySerializer, ISerializer<TValue> valueSerializer)
        where TKey : notnull
    {
        ArgumentNullException.ThrowIfNull(keySerializer);
        ArgumentNullException.ThrowIfNull(valueSerializer);
        return new TransactionalMap<TKey, TValue>(this, GetMap(name), keySerializer, valueSerializer);
    }

    /// <summary>Opens a map of raw byte keys and values (the byte-level core).</summary>
    public TransactionalMap<byte[], byte[]> OpenMap(string name) => OpenMap(name, Serializers.Bytes, Serializers.Bytes);

    internal MapCore GetMap(string name)
    {
        ThrowIfDisposed();
        TopicName.Validate(name, nameof(name));
        lock (_mapsLock)
        {
            if (!_maps.TryGetValue(name, out MapCore? map))
            {
                map = new MapCore(name);
                _maps.Add(name, map);
            }

            return map;
        }
    }

    /// <summary>Names of the maps.</summary>
    public IReadOnlyList<string> MapNames()
    {
        lock (_mapsLock)
        {
            var names = new List<string>(_maps.Keys);
            names.Sort(StringComparer.Ordinal);
            return names;
        }
    }

    // ---------------------------------------------------------------- reads

    internal void CheckKey(byte[] key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length > _options.MaxKeyBytes)
        {
            throw new ArgumentException($"The key is {key.Length} bytes; the largest allowed is {_options.MaxKeyBytes} (MvccOptions.MaxKeyBytes).", nameof(key));
        }
    }

    /// <summary>The value the transaction sees for the key, or null.</summary>
    internal byte[]? Read(MvccTransaction tx, MapCore map, byte[] key)
    {
        tx.ThrowIfNotActive();
        CheckKey(key);
        Row? row = map.Find(key);
        byte[]? value = null;
        long seen = 0;
        if (row is not null)
        {
            value = ReadRow(tx, row, out seen);
        }

        if (tx.Isolation == TransactionIsolation.Serializable)
        {
            tx.ReadSet.Add(new ReadRecord(map, key, seen));
        }

        return value;
    }

    // The visible value of a row for tx; `seenTs` is the commit ts of the version read (0: none or own/dirty).
    private byte[]? ReadRow(MvccTransaction tx, Row row, out long seenTs)
    {
        lock (row)
        {
            seenTs = 0;
            if (row.Owner is not null && (row.Owner == tx || tx.Isolation == TransactionIsolation.ReadUncommitted))
            {
                return row.Pending;
            }

            RowVersion? version = tx.UsesSnapshot ? row.VisibleAt(tx.Snapshot) : row.VisibleAt(Volatile.Read(ref _committedView).Value);
            seenTs = version?.CommitTs ?? 0;
            return version?.Value;
        }
    }

    /// <summary>Visible (key, value) pairs with from ≤ key &lt; to, in key order.</summary>
    internal List<KeyValuePair<byte[], byte[]>> Scan(MvccTransaction tx, MapCore map, byte[]? from, byte[]? to)
    {
        tx.ThrowIfNotActive();
        if (tx.Isolation == TransactionIsolation.Serializable)
        {
            tx.RangeSet.Add(new RangeRecord(map, from, to));
        }

        var result = new List<KeyValuePair<byte[], byte[]>>();
        foreach (Row row in map.Range(from, to))
        {
            byte[]? value = ReadRow(tx, row, out _);
            if (value is not null)
            {
                result.Add(new KeyValuePair<byte[], byte[]>(row.Key, value));
            }
        }

        return result;
    }

    // ---------------------------------------------------------------- writes

    /// <summary>
    /// Writes (value null = delete) under the row lock. With <paramref name="expected"/> set, writes
    /// only if the value the transaction sees equals it (compare-and-set). Returns false when the
    /// compare failed.
    /// </summary>
    internal bool Write(MvccTransaction tx, MapCore map, byte[] key, byte[]? value, bool compare = false, byte[]? expected = null)
    {
        tx.ThrowIfNotActive();
        CheckKey(key);
        if (value is not null && value.Length > _options.MaxValueBytes)
        {
            throw new ArgumentException($"The value is {value.Length} bytes; the largest allowed is {_options.MaxValueBytes} (MvccOptions.MaxValueBytes).", nameof(value));
        }

        while (true)
        {
            Row row = map.GetOrAdd(key);
            lock (row)
            {
                if (row.Removed)
                {
                    continue; // collected concurrently: look it up again
                }

                bool held = row.Owner == tx;
                if (!held)
                {
                    WaitForRowUnsynchronized(tx, map, row);
                    if (row.Removed)
                    {
                        continue;
                    }

                    // First committer wins: a snapshot transaction may not overwrite a newer commit.
                    if (tx.UsesSnapshot && row.Head is { } head && !tx.Snapshot.Sees(head.CommitTs))
                    {
                        throw new WriteConflictException($"Write conflict on map '{map.Name}': the row was changed by a transaction that committed after this transaction's snapshot (lost update prevented). Roll back and retry.");
                    }
                }

                if (compare)
                {
                    byte[]? current = held
                        ? row.Pending
                        : (tx.UsesSnapshot ? row.VisibleAt(tx.Snapshot) : row.Head)?.Value;
                    if (!BytesEqual(current, expected))
                    {
                        if (tx.Isolation == TransactionIsolation.Serializable)
                        {
                            tx.ReadSet.Add(new ReadRecord(map, key, row.Head?.CommitTs ?? 0));
                        }

                        return false;
                    }
                }

                tx.Undo.Add(new UndoEntry(map, row, held, held ? row.Pending : null));
                if (!held)
                {
                    row.Owner = tx;
                    tx.WriteSet.Add((map, row));
                }

                row.Pending = value;
                return true;
            }
        }
    }

    private static bool BytesEqual(byte[]? a, byte[]? b) => a is null ? b is null : b is not null && a.AsSpan().SequenceEqual(b);

    // Waits (row monitor held) until the row is free or times out; detects lock cycles.
    private void WaitForRowUnsynchronized(MvccTransaction tx, MapCore map, Row row)
    {
        if (row.Owner is null)
        {
            return;
        }

        long deadline = Environment.TickCount64 + (long)_options.LockTimeout.TotalMilliseconds;
        try
        {
            while (row.Owner is { } owner && owner != tx)
            {
                tx.WaitingFor = owner;

                // A full fence between publishing this wait edge and reading the others': with volatile
                // accesses alone the store may be ordered after the loads, and two transactions waiting for
                // each other could both miss the cycle (and time out with a write conflict instead).
                Interlocked.MemoryBarrier();
                int hops = 0;
                for (MvccTransaction? t = owner.WaitingFor; t is not null && hops < 1000; t = t.WaitingFor, hops++)
                {
                    if (t == tx)
                    {
                        throw new DeadlockException($"Deadlock: transaction {tx.Id} waits for {owner.Id} on map '{map.Name}', which (transitively) waits for {tx.Id}. Transaction {tx.Id} was chosen as the victim; roll it back and retry.");
                    }
                }

                long remaining = deadline - Environment.TickCount64;
                if (remaining <= 0 || !Monitor.Wait(row, TimeSpan.FromMilliseconds(remaining)))
                {
                    if (row.Owner is { } still && still != tx)
                    {
                        throw new WriteConflictException($"Write conflict on map '{map.Name}': the row is locked by transaction {still.Id} and was not released within the lock timeout of {_options.LockTimeout}.");
                    }
                }
            }
        }
        finally
        {
            tx.WaitingFor = null;
        }
    }
}
