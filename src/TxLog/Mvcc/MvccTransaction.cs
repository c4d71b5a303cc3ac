namespace TxLog.Mvcc;

/// <summary>A savepoint inside a transaction (see <see cref="MvccTransaction.SetSavepoint"/>).</summary>
public readonly record struct Savepoint(long TransactionId, int UndoPosition)
{
    /// <summary>Which savepoint of its transaction this is (1, 2, ...): two set at the same undo position, or one set after a rollback past another, are still told apart.</summary>
    internal int Sequence { get; init; }
}

/// <summary>
/// A transaction of the MVCC engine. Reads follow its isolation level; each write takes the row's
/// lock until commit or rollback and records an undo entry (so savepoints can roll back part of
/// the work). Commit writes the redo record and completes as the engine's <see cref="LogSyncMode"/>
/// says. Not thread-safe: one transaction is used by one thread or async flow at a time (any number
/// of transactions run concurrently). Disposing an unfinished transaction rolls it back.
/// </summary>
public sealed class MvccTransaction : IDisposable
{
    private readonly TransactionEngine _engine;
    internal readonly List<UndoEntry> Undo = new();
    internal readonly List<(MapCore Map, Row Row)> WriteSet = new();  // rows this transaction holds
    private List<ReadRecord>? _readSet;                                // Serializable only, created on first use
    private List<RangeRecord>? _rangeSet;
    private readonly List<int> _savepoints = new();                   // sequences of the savepoints not rolled back past, ascending
    private int _savepointSequence;

    /// <summary>The map side of a <see cref="StoreTransaction"/> (whose outcome that transaction counts, once).</summary>
    internal bool IsUnifiedPart { get; set; }

    /// <summary>Rows read (Serializable only).</summary>
    internal List<ReadRecord> ReadSet => _readSet ??= new();

    /// <summary>Ranges scanned (Serializable only).</summary>
    internal List<RangeRecord> RangeSet => _rangeSet ??= new();
    private State _state = State.Active;

    internal enum State
    {
        Active,
        Committing,
        Committed,
        RolledBack,
    }

    internal MvccTransaction(TransactionEngine engine, long id, TransactionIsolation isolation, Snapshot snapshot)
    {
        _engine = engine;
        Id = id;
        Isolation = isolation;
        Snapshot = snapshot;
    }

    /// <summary>The snapshot of RepeatableRead and Serializable transactions.</summary>
    internal Snapshot Snapshot { get; }

    /// <summary>The engine that began the transaction.</summary>
    internal TransactionEngine Engine => _engine;

    /// <summary>Unique id of the transaction (in this process).</summary>
    public long Id { get; }

    /// <summary>The isolation level.</summary>
    public TransactionIsolation Isolation { get; }

    /// <summary>
    /// The snapshot's highest commit timestamp: RepeatableRead and Serializable reads see the commits up
    /// to it that were installed when the transaction began.
    /// </summary>
    public long SnapshotTs => Snapshot.Max;

    /// <summary>The commit timestamp once committing (0 before).</summary>
    public long CommitTs { get; internal set; }

    /// <summary>The transaction this one waits for (deadlock detection).</summary>
    internal volatile MvccTransaction? WaitingFor;

    /// <summary>True while the transaction can read and write.</summary>
    public bool IsActive => _state == State.Active;

    /// <summary>True once the commit finished (its writes are visible).</summary>
    public bool IsCommitted => _state == State.Committed;

    internal bool UsesSnapshot => Isolation is TransactionIsolation.RepeatableRead or TransactionIsolation.Serializable;

    internal void ThrowIfNotActive()
    {
        if (_state != State.Active)
        {
            throw _state switch
            {
                State.Committed => new InvalidOperationException($"Transaction {Id} is committed and can no longer be used."),
                State.RolledBack => new InvalidOperationException($"Transaction {Id} was rolled back and can no longer be used."),
                _ => new InvalidOperationException($"Transaction {Id} is committing."),
            };
        }
    }

    internal void MarkCommitting() => _state = State.Committing;

    internal void MarkCommitted() => _state = State.Committed;

    internal void MarkRolledBack() => _state = State.RolledBack;

    /// <summary>Marks a point to roll back to without ending the transaction.</summary>
    public Savepoint SetSavepoint()
    {
        ThrowIfNotActive();
        int sequence = ++_savepointSequence;
        _savepoints.Add(sequence);
        return new Savepoint(Id, Undo.Count) { Sequence = sequence };
    }

    /// <summary>
    /// Undoes every write made after the savepoint; rows first written after it are unlocked. The
    /// savepoint stays valid (it can be rolled back to again); savepoints set after it are rolled back
    /// past and refused from now on.
    /// </summary>
    /// <exception cref="ArgumentException">The savepoint is not one of this transaction's, or was rolled back past.</exception>
    public void RollbackToSavepoint(Savepoint savepoint)
    {
        ThrowIfNotActive();
        int index = SavepointIndex(savepoint);
        _engine.UndoTo(this, savepoint.UndoPosition);
        _savepoints.RemoveRange(index + 1, _savepoints.Count - index - 1);
    }

    /// <summary>Forgets a savepoint (its writes stay part of the transaction).</summary>
    /// <exception cref="ArgumentException">The savepoint is not one of this transaction's, or was rolled back past.</exception>
    public void ReleaseSavepoint(Savepoint savepoint)
    {
        ThrowIfNotActive();
        SavepointIndex(savepoint);
    }

    private int SavepointIndex(Savepoint savepoint)
    {
        int index = savepoint.TransactionId == Id && savepoint.UndoPosition <= Undo.Count ? _savepoints.BinarySearch(savepoint.Sequence) : -1;
        if (index < 0)
        {
            throw new ArgumentException("The savepoint does not belong to this transaction or was rolled back past.", nameof(savepoint));
        }

        return index;
    }

    /// <summary>
    /// Commits: Serializable transactions validate their reads first (<see cref="SerializationException"/>),
    /// then the redo record is written and the task completes when the sync mode acknowledges it
    /// (Instant: after the fsync). On any failure the transaction is rolled back and the exception thrown.
    /// </summary>
    public ValueTask CommitAsync() => _engine.CommitAsync(this);

    /// <summary>Synchronous <see cref="CommitAsync"/>.</summary>
    public void Commit() => CommitAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>Undoes every write and releases every row lock.</summary>
    /// <exception cref="InvalidOperationException">
    /// The transaction is committed, or its commit is in progress (the commit decides: it either
    /// completes or fails, and then the transaction is rolled back by the commit itself).
    /// </exception>
    public void Rollback()
    {
        if (_state == State.RolledBack)
        {
            return;
        }

        // A committing transaction is refused: its redo is already written and its commit will install
        // the write set and release the snapshot; undoing it here would release its row locks and
        // snapshot while the commit still completes (snapshot released twice, acknowledged commit
        // missing in memory but replayed from redo at reopen).
        ThrowIfNotActive();
        _engine.Rollback(this);
    }

    /// <summary>Rolls back if still active.</summary>
    public void Dispose()
    {
        if (_state == State.Active)
        {
            _engine.Rollback(this);
        }
    }
}

/// <summary>How to restore a row when undoing one write.</summary>
internal readonly record struct UndoEntry(MapCore Map, Row Row, bool HeldBefore, byte[]? PendingBefore);

/// <summary>A row read by a Serializable transaction: the commit timestamp it saw (0 = none).</summary>
internal readonly record struct ReadRecord(MapCore Map, byte[] Key, long SeenTs);

/// <summary>A key range scanned by a Serializable transaction.</summary>
internal readonly record struct RangeRecord(MapCore Map, byte[]? From, byte[]? To);
