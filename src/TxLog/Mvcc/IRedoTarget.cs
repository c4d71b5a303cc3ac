using TxLog.Records;

namespace TxLog.Mvcc;

/// <summary>
/// Where the engine appends a transaction's redo batches: straight to the redo partition (a plain map
/// commit), or through the producer of a unified transaction, which stamps its producer id, epoch and
/// sequence so that the transaction's COMMIT or ABORT marker decides the redo too.
/// </summary>
internal interface IRedoTarget
{
    /// <summary>Starts a new batch in <paramref name="builder"/> (its header fields).</summary>
    void StartBatch(RecordBatchBuilder builder);

    /// <summary>Appends the built batch and returns its offsets.</summary>
    AppendResult AppendBatch(RecordBatchBuilder builder);
}

/// <summary>The plain target: batches without producer fields, appended to the redo partition.</summary>
internal sealed class PartitionRedoTarget(LogPartition redo) : IRedoTarget
{
    /// <inheritdoc />
    public void StartBatch(RecordBatchBuilder builder) =>
        builder.Reset(0, RecordBatchLayout.NoProducerId, RecordBatchLayout.NoProducerEpoch, RecordBatchLayout.NoSequence);

    /// <inheritdoc />
    public AppendResult AppendBatch(RecordBatchBuilder builder) => redo.AppendBuilt(builder);
}
