using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using TxLog.Records;

namespace TxLog.Mvcc;

public sealed partial class TransactionEngine
{
    // ---------------------------------------------------------------- commit and rollback

    internal async ValueTask CommitAsync(MvccTransaction tx)
    {
        tx.ThrowIfNotActive();
        ThrowIfDisposed();
        tx.MarkCommitting();
        long started = Stopwatch.GetTimestamp();
        long commitTs = 0;
        long lastRedoOffset = -1;
        try
        {
            if (tx.WriteSet.Count == 0)
            {
                if (tx.Isolation == TransactionIsolation.Serializable)
                {
                    lock (_commitLock)
                    {
                        ValidateUnsynchronized(tx);
                    }
                }

                FinishRolledBackOrReadOnly(tx, committed: true);
                return;
            }

            lock (_commitLock)
            {
                if (tx.Isolation == TransactionIsolation.Serializable)
                {
                    ValidateUnsynchronized(tx);
                }

                commitTs = _lastCommitTs + 1;
                _lastCommitTs = commitTs; // consumed even if the redo append fails half-way: never reused
                lastRedoOffset = AppendRedo(tx, commitTs, out long firstRedoOffset, out long redoBytes);
                tx.CommitTs = commitTs;
                _installing.Add(commitTs);
                _redoOffsets.Enqueue((commitTs, firstRedoOffset));
                _redoBytesSinceCheckpoint += redoBytes;
            }

            await WaitForSyncModeAsync(lastRedoOffset).ConfigureAwait(false);
        }
        catch
        {
            if (commitTs > 0)
            {
                FinishInstall(commitTs);
            }

            Rollback(tx);
            throw;
        }

        Install(tx, commitTs);
        _store.Telemetry.TransactionEnded("map", committed: true, started);
        if (Volatile.Read(ref _redoBytesSinceCheckpoint) > _options.CheckpointRedoBytes)
        {
            BackgroundCheckpoint();
        }
    }

    private async ValueTask WaitForSyncModeAsync(long redoOffset)
    {
        switch (_options.SyncMode)
        {
            case LogSyncMode.Instant:
                await _redo.WaitForDurableAsync(redoOffset).ConfigureAwait(false);
                break;
            case LogSyncMode.Periodic:
                // Backpressure: past the backlog limit, a commit waits for the fsync that covers it.
                if (Interlocked.Increment(ref _unsyncedCommits) > _options.MaxPendingCommits)
                {
                    await _redo.WaitForDurableAsync(redoOffset).ConfigureAwait(false);
                    Interlocked.Exchange(ref _unsyncedCommits, 0);
                }

                break;
        }
    }

    /// <summary>
    /// First half of a commit that is part of a unified transaction: validate (Serializable), take the
    /// commit timestamp and write the redo through <paramref name="redoTarget"/> (the producer writes it
    /// as a transactional batch, so the transaction's decision decides the redo too). The rows stay
    /// locked until <see cref="FinishUnified"/> or <see cref="AbortUnified"/>. Returns the commit timestamp, or 0 when the
    /// transaction wrote nothing (then it is already finished).
    /// </summary>
    internal long PrepareUnified(MvccTransaction tx, IRedoTarget redoTarget)
    {
        tx.ThrowIfNotActive();
        ThrowIfDisposed();
        tx.MarkCommitting();
        try
        {
            lock (_commitLock)
            {
                if (tx.Isolation == TransactionIsolation.Serializable)
                {
                    ValidateUnsynchronized(tx);
                }

                if (tx.WriteSet.Count == 0)
                {
                    FinishRolledBackOrReadOnly(tx, committed: true);
                    return 0;
                }

                long commitTs = _lastCommitTs + 1;
                _lastCommitTs = commitTs; // consumed even if the redo append fails half-way: never reused
                AppendRedo(tx, commitTs, out long firstRedoOffset, out long redoBytes, redoTarget);
                tx.CommitTs = commitTs;
                _installing.Add(commitTs);
                _redoOffsets.Enqueue((commitTs, firstRedoOffset));
                _redoBytesSinceCheckpoint += redoBytes;
                return commitTs;
            }
        }
        catch
        {
            Rollback(tx);
            throw;
        }
    }

    /// <summary>
    /// Puts the unified transaction's versions in place before its decision. They are invisible: the
    /// commit timestamp is in flight (snapshots and read-committed reads skip it) and the rows
    /// stay locked. <see cref="FinishUnified"/> makes them visible, <see cref="AbortUnified"/> removes them.
    /// </summary>
    internal void PreInstallUnified(MvccTransaction tx, long commitTs)
    {
        if (commitTs == 0)
        {
            return;
        }

        foreach ((MapCore _, Row row) in tx.WriteSet)
        {
            lock (row)
            {
                row.Head = new RowVersion(commitTs, row.Pending, row.Head);
            }
        }
    }

    /// <summary>
    /// Makes a committed unified transaction's versions visible and releases its row locks. Called at
    /// the instant its records become visible on its partitions (under the coordinator's visibility lock),
    /// so a cut over partitions and maps sees all of it or none of it.
    /// </summary>
    internal void FinishUnified(MvccTransaction tx, long commitTs)
    {
        if (commitTs == 0)
        {
            return;
        }

        FinishInstall(commitTs);
        long oldest = OldestSnapshot();
        foreach ((MapCore _, Row row) in tx.WriteSet)
        {
            lock (row)
            {
                row.PruneUnsynchronized(oldest);
                row.Owner = null;
                row.Pending = null;
                Monitor.PulseAll(row);
            }
        }

        tx.MarkCommitted();
        ReleaseSnapshot(tx);
    }

    /// <summary>Undoes a unified transaction that did not commit: removes its pre-installed versions and rolls back.</summary>
    /// <param name="tx">The map side.</param>
    /// <param name="commitTs">Its commit timestamp (0: it wrote nothing).</param>
    /// <param name="outcomeUnknown">
    /// The commit failed in a way only recovery can settle (a failed fsync: the decision may be on
    /// disk). The versions are removed from memory, but the timestamp stays in flight until the store
    /// reopens: the visible timestamp, checkpoints and redo trimming stay below it, so a checkpoint can
    /// never pass it and drop its redo while the log side may still be committed by recovery.
    /// </param>
    internal void AbortUnified(MvccTransaction tx, long commitTs, bool outcomeUnknown = false)
    {
        if (commitTs != 0)
        {
            foreach ((MapCore _, Row row) in tx.WriteSet)
            {
                lock (row)
                {
                    if (row.Head is { } head && head.CommitTs == commitTs)
                    {
                        row.Head = head.Older;
                    }
                }
            }

            // Its redo entry stays queued: it only makes a checkpoint keep slightly more redo (safe).
            if (!outcomeUnknown)
            {
                FinishInstall(commitTs);
            }
        }

        Rollback(tx);
    }

    // Serializable: every row read and every range scanned must still look as it did at the snapshot,
    // counting commits that are assigned but not installed yet (their rows are still locked by a
    // committing transaction). Caller holds the commit lock, so two validations never interleave.
    private void ValidateUnsynchronized(MvccTransaction tx)
    {
        foreach (ReadRecord read in tx.ReadSet)
        {
            Row? row = read.Map.Find(read.Key);
            if (row is not null && ChangedSinceSnapshot(tx, row))
            {
                throw new SerializationException($"Serialization failure: a row of map '{read.Map.Name}' read by transaction {tx.Id} was changed by a transaction that committed after its snapshot.");
            }
        }

        foreach (RangeRecord range in tx.RangeSet)
        {
            foreach (Row row in range.Map.Range(range.From, range.To))
            {
                if (ChangedSinceSnapshot(tx, row))
                {
                    throw new SerializationException($"Serialization failure: a range of map '{range.Map.Name}' scanned by transaction {tx.Id} gained, lost or changed a row after its snapshot (phantom).");
                }
            }
        }
    }

    private static bool ChangedSinceSnapshot(MvccTransaction tx, Row row)
    {
        lock (row)
        {
            if (row.Head is { } head && !tx.Snapshot.Sees(head.CommitTs))
            {
                return true;
            }

            return row.Owner is { } owner && owner != tx && owner.CommitTs > 0;
        }
    }

    // Makes the transaction's writes the newest committed versions and releases its row locks. The locks
    // are released only after the commit timestamp left the in-flight set: until then no other writer
    // can build on these versions, so no snapshot can see a commit that depends on one it excludes.
    private void Install(MvccTransaction tx, long commitTs)
    {
        long oldest = OldestSnapshot();
        foreach ((MapCore _, Row row) in tx.WriteSet)
        {
            lock (row)
            {
                row.Head = new RowVersion(commitTs, row.Pending, row.Head);
                row.PruneUnsynchronized(oldest);
            }
        }

        FinishInstall(commitTs);
        foreach ((MapCore _, Row row) in tx.WriteSet)
        {
            lock (row)
            {
                row.Owner = null;
                row.Pending = null;
                Monitor.PulseAll(row);
            }
        }

        tx.MarkCommitted();
        ReleaseSnapshot(tx);
    }

    private void FinishInstall(long commitTs)
    {
        lock (_commitLock)
        {
            int index = _installing.BinarySearch(commitTs);
            if (index >= 0)
            {
                _installing.RemoveAt(index);
            }

            long visible = _installing.Count == 0 ? _lastCommitTs : _installing[0] - 1;
            // View first: a collector that reads the new visible timestamp (its GC bound) then finds any
            // reader, inside the row lock, on the new view too, never on one that needs a pruned version.
            PublishCommittedViewUnsynchronized();
            Volatile.Write(ref _visibleTs, visible);
        }
    }

    // Caller holds the commit lock.
    private void PublishCommittedViewUnsynchronized() =>
        Volatile.Write(ref _committedView, new StrongBox<Snapshot>(new Snapshot(_lastCommitTs, InstallingNow())));

    internal void Rollback(MvccTransaction tx)
    {
        bool wrote = tx.Undo.Count > 0; // read-only transactions are not aborts (nor commits)
        UndoTo(tx, 0);
        FinishRolledBackOrReadOnly(tx, committed: false);
        if (wrote && !tx.IsUnifiedPart)
        {
            _store.Telemetry.TransactionEnded("map", committed: false, 0);
        }
    }

    private void FinishRolledBackOrReadOnly(MvccTransaction tx, bool committed)
    {
        if (committed)
        {
            tx.MarkCommitted();
        }
        else
        {
            tx.MarkRolledBack();
        }

        ReleaseSnapshot(tx);
    }

    /// <summary>Undoes writes back to an undo position; rows first locked after it are released.</summary>
    internal void UndoTo(MvccTransaction tx, int position)
    {
        for (int i = tx.Undo.Count - 1; i >= position; i--)
        {
            UndoEntry entry = tx.Undo[i];
            Row row = entry.Row;
            lock (row)
            {
                if (entry.HeldBefore)
                {
                    row.Pending = entry.PendingBefore;
                }
                else
                {
                    row.Owner = null;
                    row.Pending = null;
                    Monitor.PulseAll(row);
                    for (int w = tx.WriteSet.Count - 1; w >= 0; w--)
                    {
                        if (ReferenceEquals(tx.WriteSet[w].Row, row))
                        {
                            tx.WriteSet.RemoveAt(w);
                            break;
                        }
                    }
                }
            }

            tx.Undo.RemoveAt(i);
        }
    }

    // ---------------------------------------------------------------- redo

    // Redo of one transaction, as ordinary records of the redo partition:
    //   TxnHeader => Key 0xFF 0x01, Value: CommitTs int64, Writes int32, Flags int8 (1 = last batch of the transaction)
    //   Write     => Key: MapNameLength int16, MapName (ASCII), Key bytes; Value: the value, or null for a delete
    // A transaction is one batch when it fits MaxBatchBytes, else several, each starting with a header;
    // recovery applies it only once it has seen the batch flagged last. Returns the last offset.
    private long AppendRedo(MvccTransaction tx, long commitTs, out long firstOffset, out long bytes, IRedoTarget? target = null)
    {
        // Encoded straight into a pooled batch builder (no per-write key arrays or messages). A
        // transaction larger than a batch is split; a batch is flagged final when everything that
        // remains fits in it (sizes are over-estimated, so it then always does).
        target ??= _plainRedo;
        firstOffset = -1;
        bytes = 0;
        int maxBatch = _store.Options.MaxBatchBytes - 1024;
        long now = _store.NowMs();
        long remaining = 0;
        for (int i = 0; i < tx.WriteSet.Count; i++)
        {
            (MapCore map, Row row) = tx.WriteSet[i];
            remaining += EstimatedRedoSize(map, row);
        }

        Records.RecordBatchBuilder builder = _store.RentBuilder();
        byte[] scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(256);
        try
        {
            bool final = StartRedoBatch(target, builder, commitTs, tx.WriteSet.Count, remaining, maxBatch, now);
            for (int i = 0; i < tx.WriteSet.Count; i++)
            {
                (MapCore map, Row row) = tx.WriteSet[i];
                byte[]? value;
                lock (row)
                {
                    value = row.Pending;
                }

                int size = EstimatedRedoSize(map, row);
                if (!final && builder.Count > 1 && builder.Length + size > maxBatch)
                {
                    FinishRedoBatch(target, builder, ref firstOffset, ref bytes);
                    final = StartRedoBatch(target, builder, commitTs, tx.WriteSet.Count, remaining, maxBatch, now);
                }

                int keyLength = 2 + map.Name.Length + row.Key.Length;
                if (scratch.Length < keyLength)
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
                    scratch = System.Buffers.ArrayPool<byte>.Shared.Rent(keyLength);
                }

                BinaryPrimitives.WriteInt16BigEndian(scratch, (short)map.Name.Length);
                Encoding.ASCII.GetBytes(map.Name, scratch.AsSpan(2));
                row.Key.CopyTo(scratch, 2 + map.Name.Length);
                builder.Add(now, scratch.AsSpan(0, keyLength), true, value, value is not null, null);
                remaining -= size;
            }

            if (!final)
            {
                // The flag was decided from an over-estimate of what remained, and the real encoding fit
                // after all: close the transaction with a header-only final batch, or recovery would
                // take it for one cut short and drop it.
                FinishRedoBatch(target, builder, ref firstOffset, ref bytes);
                StartRedoBatch(target, builder, commitTs, tx.WriteSet.Count, remaining: 0, maxBatch, now);
            }

            return FinishRedoBatch(target, builder, ref firstOffset, ref bytes);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(scratch);
            _store.ReturnBuilder(builder);
        }
    }

    private static int EstimatedRedoSize(MapCore map, Row row) => 2 + map.Name.Length + row.Key.Length + (row.Pending?.Length ?? 0) + 32;

    // Starts a batch with its transaction header; returns whether it is the transaction's last batch.
    private static bool StartRedoBatch(IRedoTarget target, Records.RecordBatchBuilder builder, long commitTs, int total, long remaining, int maxBatch, long now)
    {
        bool final = remaining + Records.RecordBatchLayout.HeaderSize + 64 <= maxBatch;
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt64BigEndian(header, commitTs);
        BinaryPrimitives.WriteInt32BigEndian(header.Slice(8), total);
        header[12] = final ? FinalBatchFlag : (byte)0;
        target.StartBatch(builder);
        builder.Add(now, TxnHeaderKey, true, header, true, null);
        return final;
    }

    private static long FinishRedoBatch(IRedoTarget target, Records.RecordBatchBuilder builder, ref long firstOffset, ref long bytes)
    {
        bytes += builder.Length;
        AppendResult result = target.AppendBatch(builder);
        if (firstOffset < 0)
        {
            firstOffset = result.BaseOffset;
        }

        return result.LastOffset;
    }

    // ---------------------------------------------------------------- sync service

    private void PeriodicSync()
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            // A plain fsync on this timer thread: blocking on the group commit's asynchronous wait would
            // need another pool thread to finish it, and under a starved pool the timer stalls.
            _redo.Log.Sync();
            Interlocked.Exchange(ref _unsyncedCommits, 0);
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException)
        {
            // The redo partition recorded the failure; the next commit reports it.
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Stops the timers and makes every commit durable (the store's close fsyncs the redo log too).</summary>
    public void Dispose() => Close();

    // Set once the close has taken the checkpoint gate: no checkpoint runs any more (nor ever will).
    private bool _checkpointsDrained; // guarded by _closeLock
    private readonly object _closeLock = new();

    /// <summary>
    /// <see cref="Dispose"/>; returns false when a running checkpoint did not finish within the store's
    /// <see cref="LogStoreOptions.CloseTimeout"/>: it goes on writing and trimming files, so the store's
    /// close is not clean. Called again (the store's close after the owner's Dispose), it waits again.
    /// </summary>
    internal bool Close() => Close(_store.Options.CloseTimeout, syncRedo: true);

    /// <summary>
    /// <see cref="Close()"/>, waiting at most <paramref name="timeout"/> for a running checkpoint (what
    /// is left of the store's close). <paramref name="syncRedo"/> false: the caller fsyncs the redo log
    /// itself (the store's close does, bounded by its deadline; a plain fsync here would wait without
    /// bound behind a hung one).
    /// </summary>
    internal bool Close(TimeSpan timeout, bool syncRedo)
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            lock (_closeLock)
            {
                return _checkpointsDrained || (_checkpointsDrained = _checkpointGate.Wait(timeout));
            }
        }

        _syncTimer?.Dispose();
        _checkpointTimer?.Dispose();
        lock (_closeLock)
        {
            _checkpointsDrained = _checkpointGate.Wait(timeout);
        }

        if (syncRedo)
        {
            try
            {
                _redo.Log.Sync(); // every commit durable before the store closes (a plain fsync, as in PeriodicSync)
            }
            catch (Exception e) when (e is TxLogException or ObjectDisposedException)
            {
                // Already reported to committers.
            }
        }

        return _checkpointsDrained;
    }
}
