using Microsoft.Extensions.Logging;

namespace TxLog.Diagnostics;

/// <summary>
/// Every message TxLog logs, with a stable <see cref="EventId"/> (listed in docs/operations.md) and
/// structured fields. Ids: 1xxx recovery, 2xxx transactions, 3xxx MVCC, 4xxx I/O, 5xxx store lifecycle, 7xxx consumers
/// (6xxx are TxLog.Hosting's).
/// </summary>
internal static partial class LogMessages
{
    [LoggerMessage(EventId = 1001, EventName = "TornTailTruncated", Level = LogLevel.Warning,
        Message = "Recovery truncated a torn tail of {Bytes} bytes at position {Position} of {File}")]
    public static partial void TornTailTruncated(ILogger logger, string file, long position, long bytes);

    [LoggerMessage(EventId = 1002, EventName = "IndexRebuilt", Level = LogLevel.Information,
        Message = "Recovery rebuilt the missing or corrupt indexes of {File}")]
    public static partial void IndexRebuilt(ILogger logger, string file);

    [LoggerMessage(EventId = 1003, EventName = "RecoveryAction", Level = LogLevel.Warning,
        Message = "Recovery: {Action}")]
    public static partial void RecoveryAction(ILogger logger, string action);

    [LoggerMessage(EventId = 1004, EventName = "StoreOpened", Level = LogLevel.Information,
        Message = "Opened store {Directory} in {DurationMs:F1} ms (clean shutdown: {Clean}, segments scanned: {ScannedSegments}, bytes truncated: {TruncatedBytes}, indexes rebuilt: {RebuiltIndexes})")]
    public static partial void StoreOpened(ILogger logger, string directory, double durationMs, bool clean, int scannedSegments, long truncatedBytes, int rebuiltIndexes);

    [LoggerMessage(EventId = 1005, EventName = "IndexEntryMismatch", Level = LogLevel.Warning,
        Message = "An entry of {File} does not match the log; reads of that segment scan from its start until the index is rebuilt (at the next close and open); run `txlog verify`")]
    public static partial void IndexEntryMismatch(ILogger logger, string file);

    [LoggerMessage(EventId = 2001, EventName = "TransactionTimedOut", Level = LogLevel.Warning,
        Message = "Aborted transaction of '{TransactionalId}' (producer {ProducerId}, epoch {Epoch}) after {AgeMs} ms: it outlived its timeout of {TimeoutMs} ms; the producer is fenced")]
    public static partial void TransactionTimedOut(ILogger logger, string transactionalId, long producerId, short epoch, long ageMs, long timeoutMs);

    [LoggerMessage(EventId = 2002, EventName = "ProducerFenced", Level = LogLevel.Warning,
        Message = "Rejected producer {ProducerId} epoch {Epoch} at {Where}: it is fenced, the current epoch is {CurrentEpoch}")]
    public static partial void ProducerFenced(ILogger logger, string where, long producerId, short epoch, short currentEpoch);

    [LoggerMessage(EventId = 2003, EventName = "TransactionAbortedByAdmin", Level = LogLevel.Warning,
        Message = "Aborted the open transaction of '{TransactionalId}' (producer {ProducerId}, epoch {Epoch}) on request")]
    public static partial void TransactionAbortedByAdmin(ILogger logger, string transactionalId, long producerId, short epoch);

    [LoggerMessage(EventId = 2004, EventName = "OffsetsRestateFailed", Level = LogLevel.Warning,
        Message = "Restating __consumer_offsets while the store runs failed; nothing was deleted, the next pass of the background loop tries again")]
    public static partial void OffsetsRestateFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3001, EventName = "CheckpointWritten", Level = LogLevel.Information,
        Message = "MVCC checkpoint at timestamp {Timestamp} (redo from offset {RedoOffset}): {Entries} entries, {Bytes} bytes, written in {DurationMs:F1} ms")]
    public static partial void CheckpointWritten(ILogger logger, long timestamp, long redoOffset, long entries, long bytes, double durationMs);

    [LoggerMessage(EventId = 3002, EventName = "CheckpointFailed", Level = LogLevel.Error,
        Message = "MVCC checkpoint failed")]
    public static partial void CheckpointFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4001, EventName = "SlowFsync", Level = LogLevel.Warning,
        Message = "fsync of {File} took {DurationMs:F1} ms (threshold {ThresholdMs} ms)")]
    public static partial void SlowFsync(ILogger logger, string file, double durationMs, double thresholdMs);

    [LoggerMessage(EventId = 4002, EventName = "PartitionFailed", Level = LogLevel.Error,
        Message = "Partition {Partition} stopped after a failed {Operation}; it refuses writes until the store reopens")]
    public static partial void PartitionFailed(ILogger logger, string partition, string operation, Exception exception);

    [LoggerMessage(EventId = 4003, EventName = "DirectoryLockHeldAfterClose", Level = LogLevel.Warning,
        Message = "Closing store {Directory} ran out of its close timeout ({TimeoutMs} ms) while a file operation (such as an fsync) still runs: the store writes nothing more, but keeps the directory locked until that operation returns or the process ends")]
    public static partial void DirectoryLockHeldAfterClose(ILogger logger, string directory, double timeoutMs);

    [LoggerMessage(EventId = 4004, EventName = "DirectoryLockReleased", Level = LogLevel.Information,
        Message = "The last file operation of closed store {Directory} returned: its directory lock is released")]
    public static partial void DirectoryLockReleased(ILogger logger, string directory);

    [LoggerMessage(EventId = 5001, EventName = "DirectoryLocked", Level = LogLevel.Error,
        Message = "Cannot open {Directory}: its lock file is held by another store (this or another process)")]
    public static partial void DirectoryLocked(ILogger logger, string directory);

    [LoggerMessage(EventId = 7001, EventName = "ConsumerPositionReset", Level = LogLevel.Warning,
        Message = "Consumer of group {Group} was at offset {Offset} of partition {Partition}, below the log start offset {LogStartOffset} (retention deleted the records it had yet to read): reset to offset {NewOffset} as AutoOffsetReset.{Policy} says")]
    public static partial void ConsumerPositionReset(ILogger logger, string group, string partition, long offset, long logStartOffset, long newOffset, string policy);

    [LoggerMessage(EventId = 7002, EventName = "ConsumerGroupMemberEvicted", Level = LogLevel.Warning,
        Message = "Member {MemberId} of consumer group {Group} has not polled for {IdleMs} ms, more than its MaxPollInterval of {MaxPollMs} ms: evicted, its {Partitions} partitions go to the other members (it rejoins at its next poll; its offset commits of them fail)")]
    public static partial void ConsumerGroupMemberEvicted(ILogger logger, string group, string memberId, long idleMs, long maxPollMs, int partitions);
}
