using TxLog.Records;

namespace TxLog;

/// <summary>
/// Packs records appended one at a time into batches of about a target size and writes each full
/// batch to its partition: the way to load many small records fast (one batch header and one write
/// per batch instead of per record). Offsets are assigned when a batch is written, so
/// <see cref="Append"/> does not return one; <see cref="Flush"/> returns the range of the last batch.
/// Nothing is durable until <see cref="FlushAsync"/> completes. Not thread-safe: one appender per
/// writer thread. Dispose writes nothing: call <see cref="Flush"/> or <see cref="FlushAsync"/> first.
/// <para>
/// No accepted record is lost without a report. When a batch cannot be written (an I/O error, after
/// which the partition refuses writes until the store is reopened; the topic deleted; the store
/// closed), the call that wrote it throws <see cref="LogAppenderFaultedException"/>, naming which
/// records were not written: counted from 0 in the order <see cref="Append"/> accepted them, every
/// record from <see cref="LogAppenderFaultedException.FirstUnwrittenRecord"/> on. The appender is then
/// faulted: it holds nothing and every later <see cref="Append"/>, <see cref="Flush"/> and
/// <see cref="FlushAsync"/> throws the same report, so a loader that missed the first one still learns
/// where to start again. The pending records are not kept for a retry: a partition that failed a
/// write accepts none until the store is reopened, and then it is a new partition object.
/// </para>
/// </summary>
public sealed class LogAppender : IDisposable
{
    private readonly LogPartition _partition;
    private readonly LogStore _store;
    private readonly int _batchBytes;
    private readonly RecordBatchBuilder _builder = new();
    private long _lastWrittenOffset = -1;
    private long _written;             // records written, counted in the order Append accepted them (all before the pending ones)
    private Exception? _faultCause;    // set when a batch write failed: the appender is faulted
    private int _unwritten;            // records of the failed batch
    private bool _disposed;

    internal LogAppender(LogPartition partition, LogStore store, int batchBytes)
    {
        _partition = partition;
        _store = store;
        _batchBytes = batchBytes;
        ResetBuilder();
    }

    /// <summary>Records waiting in the open batch (none once the appender is faulted: they were not written, see <see cref="LogAppenderFaultedException"/>).</summary>
    public int PendingCount => _builder.Count;

    /// <summary>Adds a record to the open batch, writing the batch first if the record would overflow it.</summary>
    /// <exception cref="ArgumentException">The record alone exceeds <see cref="LogStoreOptions.MaxBatchBytes"/>; nothing else is affected.</exception>
    /// <exception cref="LogAppenderFaultedException">
    /// The batch could not be written (or an earlier one could not): the pending records are not in the
    /// log, this call's record is not accepted, and the appender is faulted.
    /// </exception>
    public void Append(in Message message)
    {
        ThrowIfUnusable();
        int estimate = EstimateSize(in message);
        if (_builder.Count > 0 && _builder.Length + estimate > _batchBytes)
        {
            WriteBatch();
        }

        _builder.Add(in message, _store.NowMs());
        int max = _partition.Log.Config.MaxBatchBytes;
        if (_builder.Length > max)
        {
            // Alone in the batch (the estimate is an upper bound, so any earlier records were written
            // above): refuse it now, not at a later Append or Flush that would fail and drop it silently.
            int length = _builder.Length;
            ResetBuilder();
            throw new ArgumentException($"The record needs a batch of {length} bytes; the largest allowed is {max} bytes (LogStoreOptions.MaxBatchBytes).", nameof(message));
        }
    }

    // An upper bound of the record's encoded size: the body, headers included, and every varint at its widest.
    private static int EstimateSize(in Message message)
    {
        int size = (message.Key?.Length ?? 0) + (message.Value?.Length ?? 0) + 40;
        if (message.Headers is { } headers)
        {
            for (int i = 0; i < headers.Count; i++)
            {
                RecordHeader header = headers[i];
                size += (header.Key is null ? 0 : System.Text.Encoding.UTF8.GetByteCount(header.Key)) + (header.Value?.Length ?? 0) + 10;
            }
        }

        return size;
    }

    /// <summary>Writes the open batch (if any) to the page cache; returns its offsets, or null when nothing was pending.</summary>
    /// <exception cref="LogAppenderFaultedException">The batch could not be written (or an earlier one could not); the appender is faulted.</exception>
    public AppendResult? Flush()
    {
        ThrowIfUnusable();
        return _builder.Count == 0 ? null : WriteBatch();
    }

    /// <summary>
    /// Writes the open batch and waits until everything this appender wrote is fsynced. Completes at once
    /// when the appender has written nothing.
    /// </summary>
    /// <exception cref="LogAppenderFaultedException">The batch could not be written (or an earlier one could not); the appender is faulted.</exception>
    /// <exception cref="LogWriteException">
    /// The records were written but the fsync failed (from the returned task): whether they are durable
    /// is decided by the next open's recovery; the partition refuses writes until then.
    /// </exception>
    /// <exception cref="TopicNotFoundException">
    /// The topic was deleted after the appender wrote records (from the returned task; with records still
    /// pending, <see cref="LogAppenderFaultedException"/> instead): they went with it, durable or not. This
    /// does not fault the appender; its next batch write does (<see cref="LogAppenderFaultedException"/>
    /// with a <see cref="TopicNotFoundException"/> as the cause).
    /// </exception>
    /// <exception cref="ObjectDisposedException">The store is closed.</exception>
    public ValueTask FlushAsync()
    {
        Flush();
        if (_lastWrittenOffset < 0)
        {
            return default;
        }

        _store.ThrowIfDisposed();
        if (_partition.Deleted)
        {
            // Checked first: records made durable before the deletion would pass the wait, yet they are gone.
            return ValueTask.FromException(new TopicNotFoundException(_partition.Topic));
        }

        return _partition.WaitForDurableOrTopicGoneAsync(_lastWrittenOffset); // the deletion may also come during the fsync
    }

    private AppendResult WriteBatch()
    {
        AppendResult result;
        try
        {
            result = _partition.AppendBuilt(_builder);
        }
        catch (Exception e)
        {
            // Whatever failed the write (an I/O error, a deleted topic, a closed store), the batch is not
            // in the log: report exactly which records that costs, now and on every later call.
            _faultCause = e;
            _unwritten = _builder.Count;
            ResetBuilder();
            throw Fault();
        }

        _written += _builder.Count;
        _lastWrittenOffset = result.LastOffset;
        ResetBuilder();
        return result;
    }

    private LogAppenderFaultedException Fault() =>
        new(new TopicPartition(_partition.Topic, _partition.Partition), _written, _unwritten, _lastWrittenOffset, _faultCause);

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_faultCause is not null)
        {
            throw Fault();
        }
    }

    private void ResetBuilder() =>
        _builder.Reset(0, RecordBatchLayout.NoProducerId, RecordBatchLayout.NoProducerEpoch, RecordBatchLayout.NoSequence);

    /// <summary>Drops any unwritten records and releases the buffer.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _builder.Dispose();
        }
    }
}
