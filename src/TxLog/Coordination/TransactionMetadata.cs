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
