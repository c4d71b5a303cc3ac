namespace TxLog;

/// <summary>
/// Base of every error TxLog raises for bad data on disk, protocol violations and store state.
/// Bad arguments raise the <see cref="ArgumentException"/> family instead; use after dispose raises
/// <see cref="ObjectDisposedException"/>.
/// </summary>
public class TxLogException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    public TxLogException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public TxLogException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// Bytes that should hold a record batch do not: bad magic, bad CRC, lengths that do not fit. When the
/// bytes came from a file, <see cref="FilePath"/> and <see cref="Position"/> say where.
/// </summary>
public class CorruptRecordException : TxLogException
{
    /// <summary>Creates the exception for bytes that are not in a file (or whose file is not known yet).</summary>
    public CorruptRecordException(string message) : base(message) { }

    /// <summary>Creates the exception naming the file and byte position of the bad batch.</summary>
    public CorruptRecordException(string message, string filePath, long position)
        : base($"{message} (file '{filePath}', position {position})")
    {
        FilePath = filePath;
        Position = position;
    }

    /// <summary>The file holding the corrupt bytes, when known.</summary>
    public string? FilePath { get; }

    /// <summary>The byte position of the corrupt batch in <see cref="FilePath"/>, or -1 when not known.</summary>
    public long Position { get; } = -1;
}

/// <summary>An index or metadata file is malformed (wrong size, entries out of order, bad checksum).</summary>
public class CorruptIndexException : TxLogException
{
    /// <summary>Creates the exception naming the file.</summary>
    public CorruptIndexException(string message, string filePath) : base($"{message} (file '{filePath}')")
    {
        FilePath = filePath;
    }

    /// <summary>The malformed file.</summary>
    public string FilePath { get; }
}

/// <summary>A read asked for an offset below the log start offset or above the log end offset.</summary>
public class OffsetOutOfRangeException : TxLogException
{
    /// <summary>Creates the exception with the requested offset and the valid range.</summary>
    public OffsetOutOfRangeException(TopicPartition partition, long offset, long logStartOffset, long logEndOffset)
        : this($"Offset {offset} is out of range for partition {partition}: valid offsets are {logStartOffset} to {logEndOffset} (the log end offset, where the next record will go).",
            partition, offset, logStartOffset, logEndOffset)
    {
    }

    /// <summary>Creates the exception with the message of a more specific case (see <see cref="NoOffsetForPartitionException"/>).</summary>
    protected OffsetOutOfRangeException(string message, TopicPartition partition, long offset, long logStartOffset, long logEndOffset)
        : base(message)
    {
        Partition = partition;
        Offset = offset;
        LogStartOffset = logStartOffset;
        LogEndOffset = logEndOffset;
    }

    /// <summary>The partition the offset was asked of (e.g. to seek a consumer's position there).</summary>
    public TopicPartition Partition { get; }

    /// <summary>The offset that was asked for.</summary>
    public long Offset { get; }

    /// <summary>The first offset still in the log when the read was made.</summary>
    public long LogStartOffset { get; }

    /// <summary>The log end offset when the read was made.</summary>
    public long LogEndOffset { get; }
}

/// <summary>
/// A consumer with <see cref="Consuming.AutoOffsetReset.Error"/> was assigned a partition for which its
/// group has no committed offset (or it has no group), so there is no position to start from (Kafka's
/// <c>NoOffsetForPartitionException</c>). <see cref="OffsetOutOfRangeException.Offset"/> is -1. Seek to a
/// position, commit one for the group, or use <see cref="Consuming.AutoOffsetReset.Earliest"/> or
/// <see cref="Consuming.AutoOffsetReset.Latest"/>.
/// </summary>
public class NoOffsetForPartitionException : OffsetOutOfRangeException
{
    /// <summary>Creates the exception for a partition and the consumer's group.</summary>
    public NoOffsetForPartitionException(TopicPartition partition, string? groupId, long logStartOffset, long logEndOffset)
        : base(groupId is null
            ? $"Partition {partition} has no position to start from: the consumer has no group (so no committed offset) and its AutoOffsetReset is Error. Seek to an offset, or use AutoOffsetReset.Earliest or Latest (valid offsets are {logStartOffset} to {logEndOffset})."
            : $"Partition {partition} has no committed offset for group '{groupId}' and the consumer's AutoOffsetReset is Error. Seek to an offset, commit one for the group, or use AutoOffsetReset.Earliest or Latest (valid offsets are {logStartOffset} to {logEndOffset}).",
            partition, -1, logStartOffset, logEndOffset)
    {
        GroupId = groupId;
    }

    /// <summary>The consumer's group id, or null for a consumer without a group.</summary>
    public string? GroupId { get; }
}

/// <summary>Another store (in this or another process) holds the data directory's lock file.</summary>
public class LogDirectoryLockedException : TxLogException
{
    /// <summary>Creates the exception naming the directory.</summary>
    public LogDirectoryLockedException(string directory, Exception? innerException)
        : base($"The data directory '{directory}' is already in use by another TxLog store (in this or another process); only one store may open a directory at a time.", innerException)
    {
        Directory = directory;
    }

    /// <summary>The locked directory.</summary>
    public string Directory { get; }
}

/// <summary>The named topic does not exist.</summary>
public class TopicNotFoundException : TxLogException
{
    /// <summary>Creates the exception naming the topic.</summary>
    public TopicNotFoundException(string topic) : base($"Topic '{topic}' does not exist.")
    {
        Topic = topic;
    }

    /// <summary>The topic that was asked for.</summary>
    public string Topic { get; }
}

/// <summary>A topic with that name already exists.</summary>
public class TopicAlreadyExistsException : TxLogException
{
    /// <summary>Creates the exception naming the topic.</summary>
    public TopicAlreadyExistsException(string topic) : base($"Topic '{topic}' already exists.")
    {
        Topic = topic;
    }

    /// <summary>The topic that was asked for.</summary>
    public string Topic { get; }
}

/// <summary>
/// A write or fsync failed (disk full, I/O error). The store stops accepting appends on the affected
/// partition, since what reached the disk is unknown; reopen the store to recover to the last valid batch.
/// The derived <see cref="LogAppenderFaultedException"/> also reports batches lost to a deleted topic or a
/// closed store: see its cause.
/// </summary>
public class LogWriteException : TxLogException
{
    /// <summary>Creates the exception with the I/O error that caused it.</summary>
    public LogWriteException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// A <see cref="LogAppender"/> could not write a batch, so records it had accepted (its
/// <see cref="LogAppender.Append"/> calls returned) are not in the log; the appender is faulted and
/// every later <see cref="LogAppender.Append"/>, <see cref="LogAppender.Flush"/> and
/// <see cref="LogAppender.FlushAsync"/> throws this again, with the same numbers. Records are numbered
/// from 0 in the order the appender accepted them: every record from <see cref="FirstUnwrittenRecord"/>
/// on is missing (the <see cref="UnwrittenRecords"/> that were pending, and the record of the
/// <see cref="LogAppender.Append"/> call that threw, if one did); every record before it was written,
/// the last at <see cref="LastWrittenOffset"/>. <see cref="Exception.InnerException"/> is the cause: a
/// <see cref="LogWriteException"/> (the partition then refuses writes until the store is reopened), a
/// <see cref="TopicNotFoundException"/> (the topic was deleted) or an <see cref="ObjectDisposedException"/>
/// (the store was closed).
/// <para>
/// What to do depends on the cause; the <see cref="LogWriteException"/> advice (reopen the store) holds
/// only for an I/O error or a closed store. After a reopen, appending again from
/// <see cref="FirstUnwrittenRecord"/> is right only if the records before it are still in the partition:
/// they were written, but only those made durable (a <see cref="LogAppender.FlushAsync"/> that completed
/// after them, or another fsync of the partition; <see cref="LogAppender.Flush"/> does not) are sure to
/// survive, and recovery may cut the others. Durable data is a prefix of the log, so the reopened
/// partition's <see cref="LogPartition.LogEndOffset"/> tells: above <see cref="LastWrittenOffset"/>, all of
/// them survived; otherwise the records from that offset on are gone too. When the topic was deleted, the
/// records written before went with it (the log no longer holds any record of the appender, and a topic
/// created again under the name is empty); no reopen is needed.
/// </para>
/// <para>
/// It derives from <see cref="LogWriteException"/> because accepted records were not written, so a
/// <c>catch (LogWriteException)</c> around a load sees every lost record; the cause is in
/// <see cref="Exception.InnerException"/>.
/// </para>
/// </summary>
public class LogAppenderFaultedException : LogWriteException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="partition">The appender's partition.</param>
    /// <param name="firstUnwrittenRecord">Number (from 0, in accepted order) of the first record not written.</param>
    /// <param name="unwrittenRecords">How many accepted records were not written.</param>
    /// <param name="lastWrittenOffset">Offset of the last record the appender wrote, or -1.</param>
    /// <param name="innerException">Why the write failed.</param>
    public LogAppenderFaultedException(TopicPartition partition, long firstUnwrittenRecord, int unwrittenRecords, long lastWrittenOffset, Exception? innerException)
        : base(Describe(partition, firstUnwrittenRecord, unwrittenRecords, lastWrittenOffset, innerException), innerException)
    {
        Partition = partition;
        FirstUnwrittenRecord = firstUnwrittenRecord;
        UnwrittenRecords = unwrittenRecords;
        LastWrittenOffset = lastWrittenOffset;
    }

    /// <summary>The appender's partition.</summary>
    public TopicPartition Partition { get; }

    /// <summary>
    /// Number of the first record not written, counting from 0 the records the appender accepted; also
    /// the number of records it wrote. Every record from this one on is not in the log.
    /// </summary>
    public long FirstUnwrittenRecord { get; }

    /// <summary>How many accepted records (pending in the failed batch) were not written.</summary>
    public int UnwrittenRecords { get; }

    /// <summary>Offset of the last record the appender wrote, or -1 when it wrote none.</summary>
    public long LastWrittenOffset { get; }

    private static string Describe(TopicPartition partition, long firstUnwritten, int unwritten, long lastWrittenOffset, Exception? cause)
    {
        string head = $"The appender of partition {partition} is faulted: a batch write failed ({cause?.Message}), so the {unwritten} record(s) it had accepted from record {firstUnwritten} on (counted from 0) were not written, and it accepts no more. ";
        if (cause is TopicNotFoundException)
        {
            return head + (lastWrittenOffset < 0
                ? "It wrote no record before. "
                : $"The {firstUnwritten} record(s) it wrote before (the last at offset {lastWrittenOffset}) went with the deleted topic, durable or not. ")
                + "None of its records is in the log: a topic created again under the name is new and empty.";
        }

        if (lastWrittenOffset < 0)
        {
            return head + "It wrote no record before. Append again from record 0 with a new appender after reopening the store.";
        }

        return head + $"The records before were written, the last at offset {lastWrittenOffset}, but only those that a FlushAsync completed after (or another fsync of the partition) made durable are sure to survive the reopen; recovery may cut the others. "
            + $"After reopening the store, append again with a new appender from record {firstUnwritten} if the partition's log end offset is above {lastWrittenOffset} (all of them survived), else from the first of its records at or above the log end offset.";
    }
}

/// <summary>
/// A segment holds a valid batch larger than <see cref="LogStoreOptions.MaxBatchBytes"/>: it was
/// written by a store opened with a larger limit. Recovery does not cut it (it is data, not a torn
/// write); open the store with <c>MaxBatchBytes</c> at least <see cref="BatchSize"/>.
/// </summary>
public class BatchTooLargeForConfigurationException : TxLogException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The segment file.</param>
    /// <param name="position">The batch's position in it.</param>
    /// <param name="batchSize">The batch's size, header included.</param>
    /// <param name="maxBatchBytes">The configured limit.</param>
    public BatchTooLargeForConfigurationException(string filePath, long position, int batchSize, int maxBatchBytes)
        : base($"'{filePath}' holds a valid batch of {batchSize} bytes at position {position}, larger than LogStoreOptions.MaxBatchBytes ({maxBatchBytes}); open the store with MaxBatchBytes >= {batchSize}. The segment was left as it is.")
    {
        FilePath = filePath;
        Position = position;
        BatchSize = batchSize;
    }

    /// <summary>The segment file.</summary>
    public string FilePath { get; }

    /// <summary>Position of the batch in the file.</summary>
    public long Position { get; }

    /// <summary>Size of the batch, header included.</summary>
    public int BatchSize { get; }
}

/// <summary>
/// An offset commit of a consumer-group member (<see cref="Consuming.Consumer.Commit(IReadOnlyCollection{TopicPartitionOffset})"/>,
/// or offsets sent to a transaction with the member's <see cref="Consuming.ConsumerGroupMetadata"/>) names a
/// partition the member does not own: the group was rebalanced and another member may be reading it
/// (Kafka's <c>CommitFailedException</c>). Nothing was written; in a transaction, abort it and go on from
/// the group's committed offsets.
/// </summary>
public class CommitFailedException : TxLogException
{
    /// <summary>Creates the exception for the group, member and partition.</summary>
    public CommitFailedException(string groupId, string memberId, TopicPartition partition)
        : this(groupId, memberId, partition, ownershipChanged: false)
    {
    }

    internal CommitFailedException(string groupId, string memberId, TopicPartition partition, bool ownershipChanged)
        : this(groupId, memberId, partition, ownershipChanged
            ? $"Member '{memberId}' of consumer group '{groupId}' took or gave up partitions since its group metadata was taken (a rebalance during the batch: its records may span two ownerships of a partition); the offset of {partition} was not committed."
            : $"Member '{memberId}' of consumer group '{groupId}' does not own partition {partition} (the group was rebalanced, or the member left it); its offset was not committed.")
    {
    }

    private CommitFailedException(string groupId, string memberId, TopicPartition partition, string message)
        : base(message)
    {
        GroupId = groupId;
        MemberId = memberId;
        Partition = partition;
    }

    /// <summary>The member read the partition from a topic that has been deleted since (perhaps created again under the name).</summary>
    internal static CommitFailedException TopicDeleted(string groupId, string memberId, TopicPartition partition) =>
        new(groupId, memberId, partition, $"Member '{memberId}' of consumer group '{groupId}' read partition {partition} from a topic that has been deleted since (its offsets went with it, and a topic created again under the name starts without them); its offset was not committed.");

    /// <summary>The group.</summary>
    public string GroupId { get; }

    /// <summary>The member that tried to commit.</summary>
    public string MemberId { get; }

    /// <summary>The partition it does not own.</summary>
    public TopicPartition Partition { get; }
}
