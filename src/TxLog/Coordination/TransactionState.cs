namespace TxLog.Coordination;

/// <summary>
/// States of a transactional id at the coordinator; the numbers are the on-disk values (Kafka's).
/// Valid transitions (previous states in parentheses): Empty (none, CompleteCommit, CompleteAbort),
/// Ongoing (Empty, Ongoing, CompleteCommit, CompleteAbort), PrepareCommit (Ongoing),
/// PrepareAbort (Ongoing, PrepareEpochFence), CompleteCommit (PrepareCommit),
/// CompleteAbort (PrepareAbort), PrepareEpochFence (Ongoing), Dead (Empty, CompleteCommit, CompleteAbort).
/// </summary>
public enum TransactionState : byte
{
    /// <summary>No transaction open; the producer id and epoch are allocated.</summary>
    Empty = 0,

    /// <summary>A transaction is open and has written to at least one partition.</summary>
    Ongoing = 1,

    /// <summary>The commit is decided (the decision point, once durable); markers are being written.</summary>
    PrepareCommit = 2,

    /// <summary>The abort is decided; markers are being written.</summary>
    PrepareAbort = 3,

    /// <summary>The commit is complete: every partition has its COMMIT marker.</summary>
    CompleteCommit = 4,

    /// <summary>The abort is complete: every partition has its ABORT marker.</summary>
    CompleteAbort = 5,

    /// <summary>The transactional id is expired (not used by TxLog yet).</summary>
    Dead = 6,

    /// <summary>The open transaction is being aborted with a bumped epoch (timeout or a new producer).</summary>
    PrepareEpochFence = 7,
}

/// <summary>The state machine's transition rule.</summary>
internal static class TransactionStateRules
{
    public static bool IsValidTransition(TransactionState from, TransactionState to) => to switch
    {
        TransactionState.Empty => from is TransactionState.Empty or TransactionState.CompleteCommit or TransactionState.CompleteAbort,
        TransactionState.Ongoing => from is TransactionState.Empty or TransactionState.Ongoing or TransactionState.CompleteCommit or TransactionState.CompleteAbort,
        TransactionState.PrepareCommit => from is TransactionState.Ongoing,
        TransactionState.PrepareAbort => from is TransactionState.Ongoing or TransactionState.PrepareEpochFence,
        TransactionState.CompleteCommit => from is TransactionState.PrepareCommit,
        TransactionState.CompleteAbort => from is TransactionState.PrepareAbort,
        TransactionState.PrepareEpochFence => from is TransactionState.Ongoing,
        TransactionState.Dead => from is TransactionState.Empty or TransactionState.CompleteCommit or TransactionState.CompleteAbort,
        _ => false,
    };
}
