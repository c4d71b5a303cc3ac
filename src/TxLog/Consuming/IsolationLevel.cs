namespace TxLog.Consuming;

/// <summary>What a reader of a partition sees of transactional data (Kafka's isolation.level).</summary>
public enum IsolationLevel
{
    /// <summary>
    /// Everything below the high watermark, including records of open and aborted transactions.
    /// Control records (transaction markers) are never returned.
    /// </summary>
    ReadUncommitted,

    /// <summary>
    /// Only records below the last stable offset (the first offset of the earliest open transaction,
    /// or the high watermark), skipping records of aborted transactions.
    /// </summary>
    ReadCommitted,
}
