using TxLog.Records;

namespace TxLog;

/// <summary>
/// Packs records appended one at a time into batches of about a target size and writes each full
/// batch to its partition: the way to load many small records fast (one batch header and one write
/// per batch instead of per record). Offsets are assigned when a batch is written, so
/// <see cref="Append"/> does not return one; <see cref="Flush"/> returns the range of the last batch.
/// Nothing is durable until <see cref="FlushAsync"/> completes. Not thread-safe: one appender per
/// writer thread. Dispose writes nothing: call <see cref="Flush"/> or <see cref="FlushAsync"/> first.
/// </summary>
public sealed class LogAppender : IDisposable
{
    private readonly LogPartition _partition;
    private readonly LogStore _store;
    private readonly int _batchBytes;
    private readonly RecordBatchBuilder _builder = new();
    private long _lastWrittenOffset = -1;
    private bool _disposed;

    internal LogAppender(LogPartition partition, LogStore store, int batchBytes)
    {
        _partition = partition;
        _store = store;
        _batchBytes = batchBytes;
        ResetBuilder();
    }

    /// <summary>Records waiting in the open batch.</summary>
    public int PendingCount => _builder.Count;

    /// <summary>Adds a record to the open batch, writing the batch first if the record would overflow it.</summary>
    /// <exception cref="ArgumentException">The record alone exceeds <see cref="LogStoreOptions.MaxBatchBytes"/>; nothing else is affected.</exception>
    public void Append(in Message message)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
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
    public AppendResult? Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _builder.Count == 0 ? null : WriteBatch();
    }

    /// <summary>Writes the open batch and waits until everything this appender wrote is fsynced.</summary>
    public ValueTask FlushAsync()
    {
        Flush();
        return _lastWrittenOffset < 0 ? default : _partition.WaitForDurableAsync(_lastWrittenOffset);
    }

    private AppendResult WriteBatch()
    {
        try
        {
            AppendResult result = _partition.AppendBuilt(_builder);
            _lastWrittenOffset = result.LastOffset;
            return result;
        }
        finally
        {
            ResetBuilder();
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
