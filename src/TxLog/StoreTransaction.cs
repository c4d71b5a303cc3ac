using TxLog.Mvcc;
using TxLog.Producers;

namespace TxLog;

/// <summary>
/// One transaction over state and log: reads and writes of transactional maps (through
/// <see cref="Maps"/>), appends to any partitions and consumer offsets (through the producer), all
/// committed or aborted as a unit — also across a crash.
/// <para>
/// How: the map writes take row locks as usual; at commit the engine validates (Serializable), takes
/// a commit timestamp and writes the map redo into <c>__mvcc_redo</c> as a transactional batch of the
/// same producer, so the redo is one more partition of the Kafka-style transaction. The coordinator's
/// decision (see docs/transactions.md) then covers data, offsets and state at once; after it the map
/// versions are installed (or, on failure, rolled back). Recovery reads the redo read-committed, so a
/// decided-aborted or undecided transaction never reappears in the maps.
/// </para>
/// Visibility: the records on every partition and the map versions become visible at one instant,
/// when the coordinator releases the transaction's visibility hold (the map versions are put in place
/// before the decision but stay invisible until then); <see cref="CommitAsync"/> returns once that has
/// happened. Not thread-safe: one flow uses it at a time.
/// </summary>
public sealed class StoreTransaction : IAsyncDisposable
{
    private readonly LogStore _store;
    private readonly TransactionEngine _engine;
    private readonly long _generation; // the producer's transaction this one is (see Producer.BeginTransactionInternal)
    private int _finished; // 1 once CommitAsync or AbortAsync has started (set atomically: one of them wins)

    internal StoreTransaction(LogStore store, TransactionEngine engine, Producer producer, long generation, MvccTransaction maps)
    {
        _store = store;
        _engine = engine;
        _generation = generation;
        Producer = producer;
        Maps = maps;
        maps.IsUnifiedPart = true; // counted here, once for both sides
    }

    /// <summary>The map side: pass it to <see cref="TransactionalMap{TKey, TValue}"/> calls.</summary>
    public MvccTransaction Maps { get; }

    /// <summary>The producer whose transaction carries the log side.</summary>
    public Producer Producer { get; }

    /// <summary>Appends a record to a partition inside the transaction.</summary>
    public ValueTask<DeliveryResult> ProduceAsync(TopicPartition partition, Records.Message message, CancellationToken cancellationToken = default) =>
        Producer.ProduceAsync(partition, message, cancellationToken);

    /// <summary>Appends a record to a partition chosen by the producer's partitioner.</summary>
    public ValueTask<DeliveryResult> ProduceAsync(string topic, Records.Message message, CancellationToken cancellationToken = default) =>
        Producer.ProduceAsync(topic, message, cancellationToken);

    /// <summary>Adds consumer offsets: they change if and only if the transaction commits.</summary>
    public ValueTask SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, string groupId, CancellationToken cancellationToken = default) =>
        Producer.SendOffsetsToTransactionAsync(offsets, groupId, cancellationToken);

    /// <summary>
    /// Adds consumer offsets of a consumer's group, fenced against rebalances: refused with
    /// <see cref="CommitFailedException"/> unless the (subscribed) consumer still owns every partition of
    /// them (see <see cref="Producer.SendOffsetsToTransactionAsync(IEnumerable{TopicPartitionOffset}, Consuming.ConsumerGroupMetadata, CancellationToken)"/>).
    /// </summary>
    public ValueTask SendOffsetsAsync(IEnumerable<TopicPartitionOffset> offsets, Consuming.ConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default) =>
        Producer.SendOffsetsToTransactionAsync(offsets, groupMetadata, cancellationToken);

    /// <summary>
    /// Commits maps, records and offsets together; completes once the whole transaction is durable
    /// (decided) and visible, so the caller's next transaction sees it. On failure nothing of it takes
    /// effect (and the exception is thrown).
    /// </summary>
    public async Task CommitAsync(CancellationToken cancellationToken = default)
    {
        Finish();
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        LogPartition redo = _store.GetPartition(TransactionEngine.RedoTopic, 0);
        var redoPartition = new TopicPartition(TransactionEngine.RedoTopic, 0);
        long commitTs = 0;
        bool prepared = false;
        var visible = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            // Under the producer's gate (taken before the engine's commit lock, see
            // Producer.CommitUnifiedAsync): validate, take the commit timestamp, write the redo into the
            // producer's transaction, put the versions in place (invisible), then commit. The map versions
            // become visible (and the rows unlocked) when the records do: at the release of the
            // transaction's visibility hold, under the coordinator's lock.
            await Producer.CommitUnifiedAsync(
                _generation,
                redo,
                redoPartition,
                target =>
                {
                    commitTs = _engine.PrepareUnified(Maps, target); // on failure it rolled the maps back
                    prepared = true;
                    _engine.PreInstallUnified(Maps, commitTs);
                },
                () =>
                {
                    _engine.FinishUnified(Maps, commitTs);
                    visible.TrySetResult();
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            if (!prepared)
            {
                // Refused (another caller ended the producer's transaction, a fenced or disposed producer,
                // cancelled while waiting for the producer) or failed in the engine's prepare: nothing of
                // it was decided. Whatever redo batches were written are aborted with the log side.
                if (Maps.IsActive)
                {
                    Maps.Rollback();
                }

                await AbortProducerQuietlyAsync().ConfigureAwait(false);
            }
            else
            {
                // Thrown before the decision (or with an unknown outcome after a failed fsync, which only
                // recovery settles: the store must reopen, and then maps and records agree). In memory,
                // nothing of the transaction takes effect.
                if (!Maps.IsCommitted)
                {
                    // Fenced, timed out or refused before the coordinator decided: aborted. Any other
                    // failure (an fsync, a closing store) may have left the decision on disk.
                    bool known = e is ProducerFencedException or InvalidTransactionStateException or OperationCanceledException;
                    _engine.AbortUnified(Maps, commitTs, outcomeUnknown: !known);
                }

                if (Producer.InTransaction)
                {
                    // Do not leave the log side open until its timeout.
                    await AbortProducerQuietlyAsync().ConfigureAwait(false);
                }
            }

            CountAbort(e);
            throw;
        }

        // Decided and durable; wait until it is visible too, so that what this caller does next (its next
        // transaction included) sees it. Usually immediate; longer only while transactions that started
        // before this one's last record on its partitions are still being decided.
        await visible.Task.ConfigureAwait(false);
        _store.Telemetry.TransactionEnded("unified", committed: true, started);
    }

    // A transaction the coordinator timed out, or LogStore.AbortTransactionAsync aborted, was already
    // counted (as a log abort).
    private void CountAbort(Exception? failure = null)
    {
        if (failure is not TransactionTimedOutException && !(failure is ProducerFencedException && Producer.TransactionalId is { } id
            && _store.Coordinator.WasAbortedByAdmin(id, Producer.ProducerId, Producer.Epoch)))
        {
            _store.Telemetry.TransactionEnded("unified", committed: false, 0);
        }
    }

    /// <summary>Aborts: map writes are undone, records and offsets are aborted.</summary>
    public async Task AbortAsync(CancellationToken cancellationToken = default)
    {
        Finish();
        await AbortCoreAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task AbortCoreAsync(CancellationToken cancellationToken)
    {
        Maps.Rollback();
        await Producer.AbortUnifiedTransactionAsync(_generation, cancellationToken).ConfigureAwait(false);
        CountAbort();
    }

    private async Task AbortProducerQuietlyAsync()
    {
        try
        {
            await Producer.AbortUnifiedTransactionAsync(_generation, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException)
        {
            // The coordinator's timeout or the next open aborts it.
        }
    }

    // Claims the transaction for a commit or an abort; a second claim (also from another thread) throws.
    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) != 0)
        {
            throw new InvalidOperationException("The transaction already committed or aborted.");
        }
    }

    /// <summary>Aborts if neither committed nor aborted.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0)
        {
            await AbortCoreAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }
}
