namespace TxLog.Producers;

/// <summary>
/// A newer producer with the same transactional id (a higher epoch) exists: this producer is a
/// zombie and every operation of its epoch is rejected, at the coordinator and at each partition.
/// The producer must be disposed; a new one calls <c>InitTransactions</c>.
/// </summary>
public class ProducerFencedException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    public ProducerFencedException(long producerId, short epoch, short currentEpoch)
        : base($"Producer {producerId} with epoch {epoch} is fenced: epoch {currentEpoch} is current. Another producer with the same transactional id has called InitTransactions, or the coordinator aborted this producer's transaction on timeout.")
    {
        ProducerId = producerId;
        Epoch = epoch;
        CurrentEpoch = currentEpoch;
    }

    /// <summary>The fenced producer id.</summary>
    public long ProducerId { get; }

    /// <summary>The fenced epoch.</summary>
    public short Epoch { get; }

    /// <summary>The current epoch.</summary>
    public short CurrentEpoch { get; }
}

/// <summary>
/// A batch's sequence number does not follow the producer's last one on that partition (a gap, or an
/// older batch that is not one of the last five).
/// </summary>
public class OutOfOrderSequenceException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    public OutOfOrderSequenceException(string partition, long producerId, int expectedSequence, int actualSequence)
        : base($"Out-of-order sequence from producer {producerId} on {partition}: expected {expectedSequence}, got {actualSequence}.")
    {
        ExpectedSequence = expectedSequence;
        ActualSequence = actualSequence;
    }

    /// <summary>The sequence the partition expected.</summary>
    public int ExpectedSequence { get; }

    /// <summary>The sequence the batch carried.</summary>
    public int ActualSequence { get; }
}

/// <summary>The operation is not valid in the transaction's current state (commit without begin, begin twice, ...).</summary>
public class InvalidTransactionStateException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    public InvalidTransactionStateException(string message) : base(message) { }

    /// <summary>Creates the exception with the failure that caused it.</summary>
    public InvalidTransactionStateException(string message, Exception innerException) : base(message, innerException) { }
}

/// <summary>
/// The coordinator aborted the transaction because it was open longer than its timeout; the producer's
/// epoch was bumped, so this producer is also fenced.
/// </summary>
public class TransactionTimedOutException : ProducerFencedException
{
    /// <summary>Creates the exception.</summary>
    public TransactionTimedOutException(string transactionalId, long producerId, short epoch, short currentEpoch, TimeSpan timeout)
        : base(producerId, epoch, currentEpoch)
    {
        TransactionalId = transactionalId;
        Timeout = timeout;
    }

    /// <summary>The transactional id.</summary>
    public string TransactionalId { get; }

    /// <summary>The timeout that expired.</summary>
    public TimeSpan Timeout { get; }

    /// <inheritdoc/>
    public override string Message => $"The transaction of '{TransactionalId}' was aborted by the coordinator after its timeout of {Timeout}; the producer is fenced and must be recreated. ({base.Message})";
}
