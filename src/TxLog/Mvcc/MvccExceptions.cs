namespace TxLog.Mvcc;

/// <summary>
/// A write could not take a row lock (another transaction holds it past the lock timeout), or, at
/// RepeatableRead and Serializable, the row changed after the transaction's snapshot (first committer
/// wins: the write would lose an update). The transaction should be rolled back and retried.
/// </summary>
public class WriteConflictException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    public WriteConflictException(string message) : base(message) { }
}

/// <summary>The transaction was chosen as the victim of a lock cycle; roll it back and retry.</summary>
public class DeadlockException : WriteConflictException
{
    /// <summary>Creates the exception.</summary>
    public DeadlockException(string message) : base(message) { }
}

/// <summary>
/// A Serializable transaction's reads (rows or scanned ranges) were changed by a transaction that
/// committed after its snapshot: committing would not be serializable. Roll back and retry.
/// </summary>
public class SerializationException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    public SerializationException(string message) : base(message) { }
}
