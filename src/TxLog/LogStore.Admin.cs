using TxLog.Producers;

namespace TxLog;

public sealed partial class LogStore
{
    /// <summary>
    /// Aborts the open transaction of <paramref name="transactionalId"/> the way the coordinator aborts
    /// a transaction that outlived its timeout (Kafka's <c>kafka-transactions.sh abort</c>): the
    /// producer's epoch is bumped, which fences the producer on every partition (its next send or
    /// commit fails with <see cref="ProducerFencedException"/>), ABORT markers are written to every
    /// partition of the transaction and the coordinator records CompleteAbort. Completes once the
    /// markers and the coordinator's record are durable, so read-committed readers get past the
    /// transaction. A transaction whose commit is already decided (PrepareCommit) is completed as a
    /// commit instead and false is returned.
    /// <para>
    /// Opening a store already aborts every transaction a previous session left open (recovery, see
    /// docs/transactions.md), so on a store that was just opened there is nothing left to abort: this
    /// method is for transactions left hanging by a producer of the running process (the command-line
    /// tool's <c>txlog abort</c> reports what recovery aborted).
    /// </para>
    /// </summary>
    /// <param name="transactionalId">The producer's transactional id.</param>
    /// <returns>True when a transaction was aborted; false when the id is unknown or has no open transaction.</returns>
    /// <exception cref="ArgumentException">The id is null or empty.</exception>
    /// <exception cref="InvalidTransactionStateException">The producer is committing or aborting this transaction right now; retry.</exception>
    /// <exception cref="ObjectDisposedException">The store is closed.</exception>
    public async ValueTask<bool> AbortTransactionAsync(string transactionalId)
    {
        ArgumentException.ThrowIfNullOrEmpty(transactionalId);
        ThrowIfDisposed();

        // Marker writes wait on partition locks: run them off the caller's thread.
        (bool aborted, long producerId, short epoch) = await Task.Run(() =>
        {
            bool done = Coordinator.AbortOpenTransaction(transactionalId, out long id, out short e);
            return (done, id, e);
        }).ConfigureAwait(false);
        if (aborted)
        {
            Diagnostics.LogMessages.TransactionAbortedByAdmin(Telemetry.Logger, transactionalId, producerId, epoch);
            Telemetry.TransactionEnded("log", committed: false, 0); // never throws: a listener bug must not skip the flush below
            // The markers and records are fsynced in the background; the caller is promised durability.
            await FlushAsync().ConfigureAwait(false);
        }

        return aborted;
    }
}
