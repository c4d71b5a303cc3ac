namespace TxLog.Coordination;

/// <summary>
/// The coordinator's view of one transactional id. Guarded by its own monitor (lock on the object);
/// the coordinator never holds two of them at once.
/// </summary>
internal sealed class TransactionMetadata
{
    public TransactionMetadata(string transactionalId, long producerId, short epoch, int timeoutMs)
    {
        TransactionalId = transactionalId;
        ProducerId = producerId;
        Epoch = epoch;
        TimeoutMs = timeoutMs;
    }

    public string TransactionalId { get; }

    public long ProducerId { get; set; }

    public short Epoch { get; set; }

    public int TimeoutMs { get; set; }

    public TransactionState State { get; private set; } = TransactionState.Empty;

    /// <summary>Partitions written in the current transaction, with the last offset written to each.</summary>
    public Dictionary<TopicPartition, long> Partitions { get; } = new();

    public long StartMs { get; set; } = -1;

    /// <summary>
    /// Start of the open transaction on the store's monotonic clock (in memory only; -1 when none): the
    /// timeout runs on it, so a step of the wall clock neither aborts a young transaction nor spares an old one.
    /// </summary>
    public long StartMonotonicMs { get; set; } = -1;

    public long UpdateMs { get; set; }

    /// <summary>True while an EndTransaction of this id is between its Prepare and Complete states.</summary>
    public bool Completing { get; set; }

    /// <summary>
    /// Why the last commit or abort stopped before its outcome (a failed data or decision fsync, a
    /// marker write on a failed partition). The transaction then stays claimed (<see cref="Completing"/>)
    /// until the store reopens: only recovery can tell from the disk whether it was decided.
    /// </summary>
    public Exception? FailedBeforeOutcome { get; set; }

    /// <summary>The epoch whose transaction the coordinator aborted on timeout (-1 when none).</summary>
    public short TimedOutEpoch { get; set; } = -1;

    /// <summary>The epoch whose transaction <c>LogStore.AbortTransactionAsync</c> aborted (-1 when none).</summary>
    public short AdminAbortedEpoch { get; set; } = -1;

    /// <summary>
    /// Committed transactions of this id whose COMMIT markers may not all be durable yet. Every record
    /// of the id carries them, because a later record of the id (its completion, the next transaction's
    /// decision, an epoch bump) replaces the decision at replay and may reach the disk before the
    /// markers do; recovery then still knows to commit, not abort, the data left without its marker.
    /// </summary>
    public List<UnconfirmedCommit> UnconfirmedCommits { get; } = new();

    /// <summary>Drops the entries whose markers are all durable (nothing left for recovery to finish).</summary>
    public void PruneConfirmedCommits()
    {
        UnconfirmedCommits.RemoveAll(static c => c.MarkersDurable());
    }

    /// <summary>Moves to <paramref name="next"/>; throws <see cref="InvalidOperationException"/> on a transition the state machine forbids.</summary>
    public void TransitionTo(TransactionState next)
    {
        if (!TransactionStateRules.IsValidTransition(State, next))
        {
            throw new InvalidOperationException($"Transactional id '{TransactionalId}': invalid transition {State} -> {next}.");
        }

        State = next;
    }

    /// <summary>Sets the state read back from the log, without the transition check.</summary>
    public void Restore(TransactionState state) => State = state;
}

/// <summary>A committed transaction whose markers may still be only in the page cache.</summary>
internal sealed class UnconfirmedCommit
{
    /// <summary>Read back from a record: the partitions are added by the reader, no markers are known.</summary>
    public UnconfirmedCommit(long producerId, short epoch)
        : this(producerId, epoch, new List<KeyValuePair<TopicPartition, long>>(), new List<(LogPartition, long)>())
    {
    }

    /// <summary>A commit of this process: takes (does not copy) its partition and marker lists.</summary>
    public UnconfirmedCommit(long producerId, short epoch, List<KeyValuePair<TopicPartition, long>> parts, List<(LogPartition Partition, long Offset)> markers)
    {
        ProducerId = producerId;
        Epoch = epoch;
        Parts = parts;
        Markers = markers;
    }

    /// <summary>The producer id that wrote the transaction.</summary>
    public long ProducerId { get; }

    /// <summary>The epoch it was written with (an open transaction of a later epoch is not this one).</summary>
    public short Epoch { get; }

    /// <summary>Per partition: the last offset of the transaction's data there (recorded).</summary>
    public List<KeyValuePair<TopicPartition, long>> Parts { get; }

    /// <summary>Where its markers were written (this process only; empty after a replay).</summary>
    public List<(LogPartition Partition, long Offset)> Markers { get; }

    /// <summary>
    /// Recovery's rule for data a power loss left without this commit's marker: an open transaction of
    /// the same producer and epoch on one of its partitions, starting at or below the recorded last
    /// offset there, is this commit's data (recovery writes its COMMIT marker).
    /// </summary>
    public bool Owns(TopicPartition partition, long producerId, short epoch, long firstOffset)
    {
        if (producerId != ProducerId || epoch != Epoch)
        {
            return false;
        }

        foreach ((TopicPartition part, long lastOffset) in Parts)
        {
            if (part == partition && firstOffset <= lastOffset)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True once every marker written in this process is durable.</summary>
    public bool MarkersDurable()
    {
        if (Markers.Count == 0)
        {
            return false;
        }

        foreach ((LogPartition partition, long offset) in Markers)
        {
            if (partition.Log.DurableOffset <= offset)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Fsyncs every partition whose marker of this commit is not durable yet.</summary>
    public void MakeMarkersDurable()
    {
        foreach ((LogPartition partition, long offset) in Markers)
        {
            if (partition.Log.DurableOffset <= offset)
            {
                partition.Log.Sync();
            }
        }
    }
}
