using System.Runtime.CompilerServices;
using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog;

/// <summary>
/// One partition of a topic: append batches of records, wait for durability, read from an offset or
/// a timestamp. Three positions describe it: <see cref="LogStartOffset"/> (first offset kept),
/// <see cref="HighWatermark"/> (end of durable data; readers see up to here) and
/// <see cref="LogEndOffset"/> (where the next record goes; may run ahead of the HW between fsyncs).
/// Thread-safe: any number of threads may append and read concurrently.
/// </summary>
public sealed class LogPartition
{
    private readonly LogStore _store;

    internal LogPartition(LogStore store, PartitionLog log)
    {
        _store = store;
        Log = log;
        GroupCommit = new GroupCommit(log);
    }

    internal PartitionLog Log { get; }

    internal GroupCommit GroupCommit { get; }

    /// <summary>The topic name.</summary>
    public string Topic => Log.Topic;

    /// <summary>The partition number.</summary>
    public int Partition => Log.Partition;

    /// <summary>First offset still in the log (moves forward when retention deletes segments).</summary>
    public long LogStartOffset => Log.LogStartOffset;

    /// <summary>Offset the next appended record will get.</summary>
    public long LogEndOffset => Log.LogEndOffset;

    /// <summary>
    /// End of durable data: records below it survive a crash under the store's durability mode, and
    /// readers see records below it. In <see cref="DurabilityMode.None"/> it follows the log end offset.
    /// </summary>
    public long HighWatermark => Log.HighWatermark;

    /// <summary>Bytes on disk across all segments.</summary>
    public long SizeInBytes => Log.SizeInBytes;

    /// <summary>Number of segment files.</summary>
    public int SegmentCount => Log.SegmentCount;

    /// <summary>
    /// Appends the records as one batch and returns their offsets as soon as the batch is written to
    /// the OS page cache, without waiting for durability (see <see cref="AppendAsync(ReadOnlySpan{Message}, CancellationToken)"/>).
    /// </summary>
    /// <param name="messages">The records (at least one).</param>
    /// <exception cref="ArgumentException">No records, or the batch exceeds the maximum batch size.</exception>
    /// <exception cref="LogWriteException">The write failed; the partition refuses writes until reopened.</exception>
    public AppendResult Append(ReadOnlySpan<Message> messages)
    {
        _store.ThrowIfDisposed();
        if (messages.IsEmpty)
        {
            throw new ArgumentException("At least one record is needed.", nameof(messages));
        }

        RecordBatchBuilder builder = _store.RentBuilder();
        try
        {
            builder.Reset(0, RecordBatchLayout.NoProducerId, RecordBatchLayout.NoProducerEpoch, RecordBatchLayout.NoSequence);
            long now = _store.NowMs();
            for (int i = 0; i < messages.Length; i++)
            {
                builder.Add(in messages[i], now);
            }

            return AppendBuilt(builder);
        }
        finally
        {
            _store.ReturnBuilder(builder);
        }
    }

    /// <summary>Appends one record without waiting for durability.</summary>
    public AppendResult Append(in Message message) => Append(new ReadOnlySpan<Message>(in message));

    internal AppendResult AppendBuilt(RecordBatchBuilder builder)
    {
        if (builder.Length > Log.Config.MaxBatchBytes)
        {
            throw new ArgumentException($"The batch is {builder.Length} bytes; the largest allowed is {Log.Config.MaxBatchBytes} bytes (LogStoreOptions.MaxBatchBytes).", "messages");
        }

        Memory<byte> batch = builder.Seal(0);
        AppendInfo info = Log.Append(batch, builder.Count, builder.MaxTimestamp);
        return new AppendResult(info.BaseOffset, info.LastOffset);
    }

    /// <summary>
    /// Appends the records as one batch and completes when the store's durability mode acknowledges
    /// it: in <see cref="DurabilityMode.GroupCommit"/> after the batch is fsynced (sharing the fsync
    /// with concurrent appenders); in <see cref="DurabilityMode.Periodic"/> and
    /// <see cref="DurabilityMode.None"/> once written to the page cache.
    /// </summary>
    /// <param name="messages">The records (at least one).</param>
    /// <param name="cancellationToken">Checked before the append; once written, the durability wait (one fsync) is not abandoned.</param>
    public ValueTask<AppendResult> AppendAsync(ReadOnlySpan<Message> messages, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        AppendResult result = Append(messages);
        if (_store.Options.Durability != DurabilityMode.GroupCommit)
        {
            return new ValueTask<AppendResult>(result);
        }

        ValueTask wait = GroupCommit.WaitAsync(result.LastOffset);
        return wait.IsCompletedSuccessfully ? new ValueTask<AppendResult>(result) : AwaitDurable(wait, result);
    }

    /// <summary>Appends one record and waits as the durability mode says (see <see cref="AppendAsync(ReadOnlySpan{Message}, CancellationToken)"/>).</summary>
    public ValueTask<AppendResult> AppendAsync(Message message, CancellationToken cancellationToken = default) =>
        AppendAsync(new ReadOnlySpan<Message>(in message), cancellationToken);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private static async ValueTask<AppendResult> AwaitDurable(ValueTask wait, AppendResult result)
    {
        await wait.ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// Completes once every offset up to and including <paramref name="offset"/> is fsynced, whatever
    /// the durability mode (an explicit flush). Shares the fsync with concurrent waiters.
    /// </summary>
    public ValueTask WaitForDurableAsync(long offset)
    {
        _store.ThrowIfDisposed();
        return GroupCommit.WaitAsync(offset);
    }

    /// <summary>Fsyncs everything appended so far.</summary>
    public ValueTask FlushAsync() => WaitForDurableAsync(Log.LogEndOffset - 1);

    /// <summary>
    /// Opens a reader at <paramref name="offset"/> (an index lookup, then a scan within one index
    /// interval). The reader sees records below the high watermark.
    /// </summary>
    /// <exception cref="OffsetOutOfRangeException">The offset is below the log start offset or above the log end offset.</exception>
    public LogReader OpenReader(long offset)
    {
        _store.ThrowIfDisposed();
        return new LogReader(Log, offset);
    }

    /// <summary>
    /// Offset of the first record whose timestamp is at or after <paramref name="timestampMs"/> (ms
    /// since the Unix epoch), below the high watermark; null when there is none (Kafka's offsetsForTimes).
    /// </summary>
    public long? OffsetForTimestamp(long timestampMs)
    {
        _store.ThrowIfDisposed();
        return Log.OffsetForTimestamp(timestampMs, Log.HighWatermark);
    }

    /// <summary>
    /// Creates a single-threaded appender that packs consecutive records into batches of about
    /// <paramref name="batchBytes"/> bytes (like a Kafka producer's batch.size) for bulk loading.
    /// </summary>
    public LogAppender CreateAppender(int batchBytes = 64 * 1024)
    {
        _store.ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfLessThan(batchBytes, RecordBatchLayout.HeaderSize + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(batchBytes, Log.Config.MaxBatchBytes);
        return new LogAppender(this, _store, batchBytes);
    }

    /// <inheritdoc/>
    public override string ToString() => Log.Name;
}
