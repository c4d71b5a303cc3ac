using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using TxLog.Diagnostics;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Coordination;

/// <summary>A transactional id as the coordinator sees it (for tools and tests).</summary>
/// <param name="TransactionalId">The transactional id.</param>
/// <param name="ProducerId">Its producer id.</param>
/// <param name="Epoch">Its current epoch.</param>
/// <param name="State">The coordinator state.</param>
/// <param name="Partitions">Partitions written by the open transaction.</param>
/// <param name="StartedAt">When the open transaction wrote its first record, or null.</param>
/// <param name="Timeout">The transaction timeout.</param>
public sealed record TransactionDescription(string TransactionalId, long ProducerId, short Epoch, TransactionState State,
    IReadOnlyList<TopicPartition> Partitions, DateTimeOffset? StartedAt, TimeSpan Timeout);

/// <summary>
/// The in-process transaction coordinator. Its state changes are records in the internal partition
/// <c>__transaction_state</c>-0 (see <see cref="TransactionLogRecords"/>); opening the store replays
/// that log (restated compactly at open so replay stays short) and then finishes undecided work:
/// <list type="bullet">
/// <item>PrepareCommit with all data durable: COMMIT markers are written; with data missing on any
/// partition (the commit was never acknowledged): ABORT markers.</item>
/// <item>PrepareAbort / PrepareEpochFence: ABORT markers.</item>
/// <item>Any transaction still open in a partition (its producer state says so) that no durable
/// decision covers: ABORT marker. "Ongoing" is deliberately not made durable: in one process the
/// partitions themselves say which transactions are open, so recovery asks them.</item>
/// </list>
/// Commit protocol (see docs/transactions.md): one round of fsyncs in which the data partitions and
/// the PrepareCommit record are made durable in parallel — the decision point is "PrepareCommit
/// durable and every partition's data durable", and the PrepareCommit record names the last offset
/// written to each partition, so recovery can tell — then the markers, whose fsync is not waited for
/// (it makes the commit visible to read-committed readers, not durable). A transaction that touched
/// one partition skips the coordinator: its COMMIT marker follows its data in that partition and
/// one fsync of that partition is the decision.
/// Thread-safety: thread-safe; one monitor per transactional id plus <c>_lock</c> for the table and
/// producer-id allocation (never held together with a metadata monitor while writing markers).
/// </summary>
internal sealed class TransactionCoordinator : IDisposable
{
    /// <summary>Name of the internal topic holding the coordinator's state.</summary>
    public const string TopicName = "__transaction_state";

    private const int ProducerIdBlockSize = 1000;

    private readonly LogStore _store;
    private readonly LogPartition _log;
    private readonly object _lock = new();
    private readonly Dictionary<string, TransactionMetadata> _transactions = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<long, short> _epochs = new(); // producer id -> current epoch (fencing at partitions)
    private long _nextProducerId;
    private long _blockEnd;
    private long _blockRecord = -1;   // offset of the record of the current producer-id block (-1: replayed, durable)
    private ITimer? _timer;

    private TransactionCoordinator(LogStore store, LogPartition log)
    {
        _store = store;
        _log = log;
        _inReleaseGroup = _releaseGroup.Contains;
    }

    private long NowMs => _store.NowMs();

    /// <summary>Tests only: called at named steps of a commit ("prepare", "decided", "marker:N", "completed") and of the timeout sweep ("expired": between finding an expired transaction and aborting it).</summary>
    internal Action<string>? StepHook { get; set; }

    /// <summary>Opens the coordinator: replay, restate, recover undecided transactions, start the timeout timer.</summary>
    public static TransactionCoordinator Open(LogStore store, RecoveryReport report)
    {
        var coordinator = new TransactionCoordinator(store, store.GetPartition(TopicName, 0));
        coordinator.Replay();
        coordinator.Recover(report);
        coordinator.Restate();
        TimeSpan period = store.Options.TransactionTimeoutCheckInterval;
        coordinator._timer = NoFlow.CreateTimer(store.Options.TimeProvider, static c => ((TransactionCoordinator)c!).OnTimer(), coordinator, period, period);
        coordinator._visibilityTimer = NoFlow.CreateTimer(TimeProvider.System, static c => ((TransactionCoordinator)c!).TryReleaseVisibility(), coordinator, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        return coordinator;
    }

    private void Replay()
    {
        PartitionLog log = _log.Log;
        if (log.LogEndOffset == log.LogStartOffset)
        {
            return;
        }

        log.ForEachBatch(log.LogStartOffset, (batch, segment) =>
        {
            if (batch.IsControl)
            {
                return;
            }

            foreach (Record record in batch)
            {
                if (!record.HasKey || record.Key.Length == 0 || !record.HasValue)
                {
                    throw new CorruptRecordException($"Malformed {TopicName} record", segment.LogPath, -1);
                }

                if (record.Key[0] == TransactionLogRecords.MetadataType)
                {
                    string id = System.Text.Encoding.UTF8.GetString(record.Key.Slice(1));
                    _transactions[id] = TransactionLogRecords.ReadMetadata(id, record.Value);
                }
                else if (record.Key[0] == TransactionLogRecords.ProducerIdBlockType)
                {
                    _blockEnd = Math.Max(_blockEnd, TransactionLogRecords.ReadProducerIdBlock(record.Value));
                }
            }
        });

        // Ids below the last block's end may have been handed out before the crash: never reuse them.
        _nextProducerId = _blockEnd;
        foreach (TransactionMetadata m in _transactions.Values)
        {
            _nextProducerId = Math.Max(_nextProducerId, m.ProducerId + 1);
            _blockEnd = Math.Max(_blockEnd, _nextProducerId);
        }
    }

    // Finishes decided work and aborts every transaction the partitions still hold open.
    private void Recover(RecoveryReport report)
    {
        List<LogPartition> partitions = _store.AllPartitionsInternal();

        // What survived the crash, before recovery appends any marker: a decision's data is complete on a
        // partition only if its recorded last offset is below THIS end (the markers written below take
        // the very offsets lost data had).
        var recoveredEnd = new Dictionary<LogPartition, long>(partitions.Count);
        foreach (LogPartition p in partitions)
        {
            recoveredEnd[p] = p.LogEndOffset;
        }

        // Epochs: a producer may have written with an epoch whose record was lost (not durable).
        foreach (TransactionMetadata m in _transactions.Values)
        {
            foreach (LogPartition p in partitions)
            {
                if (p.ProducerState.Get(m.ProducerId) is { } entry && entry.Epoch > m.Epoch)
                {
                    m.Epoch = entry.Epoch;
                }
            }

            _epochs[m.ProducerId] = m.Epoch;
        }

        // Committed transactions whose markers a power loss may have taken (the record that names them
        // survived, the marker did not): the data left open below the recorded last offset is theirs.
        foreach (TransactionMetadata m in _transactions.Values)
        {
            foreach (UnconfirmedCommit c in m.UnconfirmedCommits)
            {
                foreach ((TopicPartition tp, long _) in c.Parts)
                {
                    if (!_store.TryGetPartitionInternal(tp, out LogPartition? p))
                    {
                        continue;
                    }

                    foreach ((long pid, short epoch, long first) in p!.ProducerState.OngoingTransactions())
                    {
                        if (c.Owns(tp, pid, epoch, first))
                        {
                            WriteMarker(p, pid, Math.Max(epoch, _epochs.TryGetValue(pid, out short known) ? known : c.Epoch), ControlRecordType.Commit);
                            report.Add($"{p}: wrote the lost COMMIT marker of '{m.TransactionalId}' (producer {pid}, epoch {c.Epoch}) for its data from offset {first}");
                        }
                    }
                }
            }

            m.UnconfirmedCommits.Clear(); // durable with the partitions' sync below, before any new record
        }

        foreach (TransactionMetadata m in _transactions.Values)
        {
            switch (m.State)
            {
                case TransactionState.PrepareCommit:
                    bool complete = true;
                    foreach ((TopicPartition tp, long lastOffset) in m.Partitions)
                    {
                        // A partition that is gone belongs to a deleted topic (topics.meta changes before
                        // any directory is removed): nothing to decide there. One whose data is missing
                        // means the decision was made without it: abort everywhere.
                        if (_store.TryGetPartitionInternal(tp, out LogPartition? p) && recoveredEnd[p!] <= lastOffset)
                        {
                            complete = false;
                        }
                    }

                    WriteRecoveryMarkers(m.ProducerId, m.Epoch, m.Partitions, complete ? ControlRecordType.Commit : ControlRecordType.Abort);
                    m.Restore(complete ? TransactionState.CompleteCommit : TransactionState.CompleteAbort);
                    report.Add($"{TopicName}: completed the {(complete ? "commit" : "abort (data missing after the crash)")} of '{m.TransactionalId}' (producer {m.ProducerId}, epoch {m.Epoch})");
                    break;
                case TransactionState.PrepareAbort or TransactionState.PrepareEpochFence:
                    WriteRecoveryMarkers(m.ProducerId, m.Epoch, m.Partitions, ControlRecordType.Abort);
                    m.Restore(TransactionState.CompleteAbort);
                    report.Add($"{TopicName}: completed the abort of '{m.TransactionalId}'");
                    break;
                case TransactionState.Ongoing:
                    m.Restore(TransactionState.CompleteAbort);
                    break;
            }

            m.Partitions.Clear();
            m.StartMs = -1;
            m.StartMonotonicMs = -1;
        }

        foreach (LogPartition p in partitions)
        {
            foreach ((long pid, short epoch, long first) in p.ProducerState.OngoingTransactions())
            {
                short markerEpoch = _epochs.TryGetValue(pid, out short known) ? Math.Max(known, epoch) : epoch;
                WriteMarker(p, pid, markerEpoch, ControlRecordType.Abort);
                report.Add($"{p}: aborted the undecided transaction of producer {pid} (epoch {epoch}) open since offset {first}");
            }
        }

        // The markers written above decide what readers see: make them durable (and visible) before
        // the store is handed out, whatever the durability mode.
        foreach (LogPartition p in partitions)
        {
            if (p.Log.DurableOffset < p.LogEndOffset)
            {
                p.Log.Sync();
            }
        }
    }

    // Rewrites the whole state as a fresh prefix of the log and drops the history before it.
    private void Restate()
    {
        PartitionLog log = _log.Log;
        long records = log.LogEndOffset - log.LogStartOffset;
        if (records <= 2L * (_transactions.Count + 1) + 1000 && log.SegmentCount == 1)
        {
            // Nothing much to gain; just persist the recovered states.
            foreach (TransactionMetadata m in _transactions.Values)
            {
                AppendRecord(m);
            }

            return;
        }

        RestateNow();
    }

    /// <summary>
    /// History (records beyond two per transactional id) that the running store lets
    /// <c>__transaction_state</c> grow by before <see cref="RestateIfGrown"/> rewrites it (tests lower it).
    /// </summary>
    internal long LiveRestateSlack { get; set; } = 100_000;

    private readonly object _restateLock = new();

    /// <summary>
    /// While the store runs: when the coordinator log is mostly history, rewrites every id's current state
    /// (and the producer-id block) after a roll, makes it durable, then deletes the segments before it, so
    /// the log does not grow by a few records per transaction until the next open. Called from the timer.
    /// </summary>
    /// <remarks>
    /// Concurrent commits go on: every record after the roll, theirs included, is kept; each id's copy is
    /// written under its lock, so it is the state its last record set (an Ongoing copy is harmless: recovery
    /// aborts an undecided transaction anyway). A crash before the deletion leaves old and new records,
    /// and replay keeps each id's last one.
    /// </remarks>
    internal bool RestateIfGrown()
    {
        PartitionLog log = _log.Log;
        int ids;
        lock (_lock)
        {
            ids = _transactions.Count;
        }

        if (log.LogEndOffset - log.LogStartOffset <= 2L * (ids + 1) + LiveRestateSlack)
        {
            return false;
        }

        RestateNow();
        return true;
    }

    // Rolls, writes the producer-id block and every id's current state (each under its lock), makes them
    // durable, then deletes the segments before them. Used at open and, concurrently with commits, live.
    private void RestateNow()
    {
        lock (_restateLock)
        {
            PartitionLog log = _log.Log;
            log.Roll();
            long start = log.LogEndOffset;
            List<TransactionMetadata> all;
            lock (_lock)
            {
                _log.Append(new Message(TransactionLogRecords.ProducerIdBlockKey(), TransactionLogRecords.ProducerIdBlockValue(_blockEnd)));
                all = new List<TransactionMetadata>(_transactions.Values);
            }

            foreach (TransactionMetadata m in all)
            {
                lock (m)
                {
                    AppendRecord(m);
                }
            }

            log.Sync();
            log.DeleteSegmentsBefore(start);
        }
    }

    private long AppendRecord(TransactionMetadata m)
    {
        m.PruneConfirmedCommits();
        // Written into a pooled buffer: the append copies it into the batch (no allocation per record).
        int keySize = TransactionLogRecords.MetadataKeySize(m.TransactionalId);
        int valueSize = TransactionLogRecords.MetadataValueSize(m);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(keySize + valueSize);
        try
        {
            TransactionLogRecords.WriteMetadataKey(m.TransactionalId, buffer.AsSpan(0, keySize));
            TransactionLogRecords.WriteMetadataValue(m, buffer.AsSpan(keySize, valueSize));
            return _log.Append(new Message(buffer.AsMemory(0, keySize), buffer.AsMemory(keySize, valueSize))).LastOffset;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>True when <paramref name="epoch"/> is older than the producer's current epoch.</summary>
    public bool IsFenced(long producerId, short epoch, out short current) =>
        _epochs.TryGetValue(producerId, out current) && epoch < current;

    /// <summary>Allocates a producer id for an idempotent, non-transactional producer (epoch 0).</summary>
    public async ValueTask<long> AllocateProducerIdAsync()
    {
        long id;
        long blockRecord;
        lock (_lock)
        {
            if (_nextProducerId >= _blockEnd)
            {
                _blockEnd = _nextProducerId + ProducerIdBlockSize;
                _blockRecord = _log.Append(new Message(TransactionLogRecords.ProducerIdBlockKey(), TransactionLogRecords.ProducerIdBlockValue(_blockEnd))).LastOffset;
            }

            id = _nextProducerId++;
            _epochs[id] = 0;
            blockRecord = _blockRecord;
        }

        // Every caller, not only the one that wrote it, waits until the record of the block its id comes
        // from is durable (at once when it already is): always, whatever the mode. Otherwise a crash
        // could lose the block and hand the same id out again, and a reused producer id corrupts
        // duplicate detection (the new producer's records are taken for the old one's retries).
        if (blockRecord >= 0)
        {
            await _log.WaitForDurableAsync(blockRecord).ConfigureAwait(false);
        }

        return id;
    }

    /// <summary>
    /// InitTransactions: returns the producer id and a bumped epoch for <paramref name="transactionalId"/>,
    /// first aborting (or completing) a transaction of the previous epoch. Older epochs are fenced.
    /// </summary>
    public async ValueTask<(long ProducerId, short Epoch)> InitTransactionsAsync(string transactionalId, TimeSpan timeout)
    {
        TransactionMetadata? m;
        lock (_lock)
        {
            _transactions.TryGetValue(transactionalId, out m);
        }

        if (m is null)
        {
            long pid = await AllocateProducerIdAsync().ConfigureAwait(false);
            lock (_lock)
            {
                if (!_transactions.TryGetValue(transactionalId, out m))
                {
                    m = new TransactionMetadata(transactionalId, pid, -1, (int)timeout.TotalMilliseconds);
                    _transactions.Add(transactionalId, m);
                }
            }
        }

        long record;
        long producerId;
        short epoch;
        while (true)
        {
            // Finish whatever the previous epoch left.
            AbortOrCompleteOpenTransaction(m, timedOut: false);
            lock (m)
            {
                // The previous instance (still holding the current epoch) may have begun a transaction and
                // written to a partition since: bumping the epoch now would forget that open transaction
                // (its data would stay open, and the new epoch's next transaction there would commit it).
                // Abort it first, as above.
                if (m.State == TransactionState.Ongoing && !m.Completing)
                {
                    continue;
                }

                if (m.State is TransactionState.PrepareCommit or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence || m.Completing)
                {
                    throw new InvalidTransactionStateException($"Transactional id '{transactionalId}' is completing a transaction; try again.");
                }

                if (m.Epoch >= short.MaxValue - 1)
                {
                    // Epoch exhausted: a new producer id, as Kafka does.
                    lock (_lock)
                    {
                        m.ProducerId = _nextProducerId++;
                    }

                    m.Epoch = 0;
                }
                else
                {
                    m.Epoch++;
                }

                m.TimeoutMs = (int)timeout.TotalMilliseconds;
                m.Restore(TransactionState.Empty);
                m.Partitions.Clear();
                m.StartMs = -1;
                m.StartMonotonicMs = -1;
                m.UpdateMs = NowMs;
                _epochs[m.ProducerId] = m.Epoch;
                record = AppendRecord(m);
                producerId = m.ProducerId;
                epoch = m.Epoch;
            }

            break;
        }

        // The new epoch must survive a crash, or a restarted producer could reuse it.
        await _log.WaitForDurableAsync(record).ConfigureAwait(false);
        return (producerId, epoch);
    }

    /// <summary>
    /// Registers a partition in the producer's transaction before the producer writes to it (so an
    /// abort on timeout reaches it), opening the transaction if needed. Checks fencing.
    /// </summary>
    public void AddPartition(string transactionalId, long producerId, short epoch, TopicPartition partition, LogPartition target)
    {
        TransactionMetadata m = Get(transactionalId);
        lock (m)
        {
            CheckProducerUnsynchronized(m, producerId, epoch);

            // Checked under m's lock, which DeleteTopic's scan also takes after it retires the topic's
            // partitions: either the scan sees this partition in the open transaction (and the delete
            // is refused) or this sees the partition retired.
            if (target.Retired)
            {
                throw new TopicNotFoundException(partition.Topic);
            }
            if (m.State is TransactionState.Empty or TransactionState.CompleteCommit or TransactionState.CompleteAbort)
            {
                m.TransitionTo(TransactionState.Ongoing);
                m.Partitions.Clear();
                m.StartMs = NowMs;
                m.StartMonotonicMs = _store.MonotonicMs();
            }
            else if (m.State != TransactionState.Ongoing)
            {
                throw new InvalidTransactionStateException($"Transactional id '{transactionalId}' is {m.State}; no partition can join its transaction now.");
            }

            if (!m.Partitions.ContainsKey(partition))
            {
                // The transaction's decision record names every partition (and the commits whose markers
                // are pending): it must stay writable, or the transaction could neither commit nor abort.
                if (RecordBytesWith(m, partition) > _log.Log.Config.MaxBatchBytes)
                {
                    ConfirmOldestCommits(m, keep: 0);
                    if (RecordBytesWith(m, partition) > _log.Log.Config.MaxBatchBytes)
                    {
                        throw new InvalidTransactionStateException(
                            $"Transactional id '{transactionalId}' cannot add {partition} to its transaction: the coordinator record naming its {m.Partitions.Count + 1} partitions would exceed LogStoreOptions.MaxBatchBytes ({_log.Log.Config.MaxBatchBytes}); commit or abort the transaction first.");
                    }
                }

                m.Partitions[partition] = -1;
            }
        }
    }

    // Upper bound of the batch holding m's record once it also names partition (batch header and record framing included).
    private static int RecordBytesWith(TransactionMetadata m, TopicPartition partition) =>
        RecordBatchLayout.HeaderSize + 64 + TransactionLogRecords.MetadataKeySize(m.TransactionalId)
        + TransactionLogRecords.MetadataValueSize(m) + TransactionLogRecords.PartitionSize(partition);

    /// <summary>Records the last offset written to a partition by the open transaction.</summary>
    public void RecordWrite(string transactionalId, long producerId, short epoch, TopicPartition partition, long lastOffset)
    {
        TransactionMetadata m = Get(transactionalId);
        lock (m)
        {
            if (m.ProducerId == producerId && m.Epoch == epoch && m.State == TransactionState.Ongoing && m.Partitions.TryGetValue(partition, out long known) && lastOffset > known)
            {
                m.Partitions[partition] = lastOffset;
            }
        }
    }

    /// <summary>Commits or aborts the producer's open transaction (see the class comment for the protocol).</summary>
    /// <remarks>
    /// Traced as a <c>txlog.commit</c> / <c>txlog.abort</c> span; counted and timed on the store's meter,
    /// except the log side of a unified transaction (<paramref name="unified"/>), which
    /// <see cref="StoreTransaction"/> counts once for both sides.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask EndTransactionAsync(string transactionalId, long producerId, short epoch, bool commit, Action? onVisible = null, bool unified = false)
    {
        StoreTelemetry telemetry = _store.Telemetry;
        long started = Stopwatch.GetTimestamp();
        using Activity? span = telemetry.StartActivity(commit ? "txlog.commit" : "txlog.abort");
        span?.SetTag("txlog.transactional_id", transactionalId);
        span?.SetTag("txlog.producer_id", producerId);
        int partitions;
        try
        {
            partitions = await EndTransactionCoreAsync(transactionalId, producerId, epoch, commit, onVisible).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            span?.SetStatus(ActivityStatusCode.Error, e.Message);
            throw;
        }

        // After the outcome: a listener that throws must not turn a finished commit into a failure.
        span?.SetTag("txlog.partitions", partitions);
        span?.SetStatus(ActivityStatusCode.Ok);
        if (partitions > 0 && !unified)
        {
            telemetry.TransactionEnded("log", commit, started);
        }
    }

    // Returns the number of partitions the transaction touched (0: nothing was open).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> EndTransactionCoreAsync(string transactionalId, long producerId, short epoch, bool commit, Action? onVisible)
    {
        TransactionMetadata m = Get(transactionalId);
        List<KeyValuePair<TopicPartition, long>> parts;
        long decisionRecord = -1;
        StepHook?.Invoke("prepare");
        lock (m)
        {
            CheckProducerUnsynchronized(m, producerId, epoch);
            if (m.State is TransactionState.Empty or TransactionState.CompleteCommit or TransactionState.CompleteAbort)
            {
                if (commit)
                {
                    onVisible?.Invoke(); // nothing was written: "visible" at once (a unified commit waits for it)
                }

                return 0; // nothing was written in this transaction
            }

            if (m.State != TransactionState.Ongoing)
            {
                throw new InvalidTransactionStateException($"Transactional id '{transactionalId}' is already {m.State}.");
            }

            parts = new List<KeyValuePair<TopicPartition, long>>(m.Partitions);
            m.UpdateMs = NowMs;
            m.TransitionTo(commit ? TransactionState.PrepareCommit : TransactionState.PrepareAbort);
            m.Completing = true; // nobody else (InitTransactions, the timeout) may finish it meanwhile
            if (!commit || parts.Count > 1)
            {
                try
                {
                    decisionRecord = AppendRecord(m);
                }
                catch (ArgumentException)
                {
                    // Refused before anything was written: the transaction is still open, as it was.
                    m.Completing = false;
                    m.Restore(TransactionState.Ongoing);
                    throw;
                }
                catch (Exception e)
                {
                    // The coordinator log failed while writing the decision: only recovery can tell
                    // whether it reached the disk (see AbortOrCompleteOpenTransaction).
                    m.FailedBeforeOutcome = e;
                    throw;
                }
            }
        }

        var markers = new List<(LogPartition Partition, long Offset)>(parts.Count);
        VisibilityHold? hold = null;
        PendingVisibility? pendingVisibility = null;
        Exception? markerFailure = null;
        try
        {
            if (commit)
            {
                if (parts.Count == 1)
                {
                    // One partition: its COMMIT marker right after the data, one fsync, is the decision.
                    LogPartition p = Partition(parts[0].Key);
                    AppendResult? marker = WriteMarker(p, producerId, epoch, ControlRecordType.Commit);
                    if (marker is { } written)
                    {
                        await WaitDurableForModeAsync(p, written.LastOffset).ConfigureAwait(false);
                        markers.Add((p, written.LastOffset));
                    }

                    StepHook?.Invoke("decided");
                }
                else
                {
                    await MakeDurableAsync(parts, decisionRecord).ConfigureAwait(false);
                    StepHook?.Invoke("decided");

                    // Atomic visibility across partitions: each partition keeps its LSO at this transaction
                    // until every marker is durable, then one shared flag releases them all at once.
                    // Registered (not ready: markers unknown) before any marker exists, so a release
                    // decision never misses a hold that already caps some partition's LSO.
                    hold = new VisibilityHold();
                    pendingVisibility = new PendingVisibility(hold) { OnVisible = onVisible };
                    lock (_visibilityLock)
                    {
                        foreach (KeyValuePair<TopicPartition, long> part in parts)
                        {
                            if (!_store.TryGetPartitionInternal(part.Key, out LogPartition? p))
                            {
                                continue; // its topic was deleted after the decision: nothing to show there
                            }

                            long first = p!.HoldVisibility(producerId, hold);
                            if (first >= 0)
                            {
                                pendingVisibility.Parts.Add((p, first, Math.Max(first, part.Value)));
                            }
                        }

                        _pendingVisibility.Add(pendingVisibility);
                    }

                    try
                    {
                        foreach (KeyValuePair<TopicPartition, long> part in parts)
                        {
                            if (_store.TryGetPartitionInternal(part.Key, out LogPartition? p)
                                && WriteMarker(p!, producerId, epoch, ControlRecordType.Commit) is { } written)
                            {
                                markers.Add((p!, written.LastOffset));
                            }

                            StepHook?.Invoke("marker:" + markers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
                        }
                    }
                    catch (Exception e)
                    {
                        // The decision is durable, so the transaction IS committed: the commit succeeds. A
                        // partition that could not take its marker has failed (it refuses writes until the
                        // store reopens), and the state stays PrepareCommit so recovery writes the missing
                        // markers. Its hold is dropped: a failed partition must not freeze the others.
                        markerFailure = e;
                    }
                }
            }
            else
            {
                foreach (KeyValuePair<TopicPartition, long> part in parts)
                {
                    LogPartition p = Partition(part.Key);
                    if (WriteMarker(p, producerId, epoch, ControlRecordType.Abort) is { } written)
                    {
                        markers.Add((p, written.LastOffset));
                    }
                }
            }

        }
        catch (Exception e)
        {
            // Failed before its outcome (a failed data or decision fsync, a marker write on a failed
            // partition). It stays claimed: completing it in memory now could commit it on the healthy
            // partitions while the failed one lost its data, and aborting it could contradict a decision
            // that did reach the disk. Only recovery can tell (a failed partition needs a reopen anyway);
            // until then InitTransactions of the id says so (see AbortOrCompleteOpenTransaction).
            lock (m)
            {
                m.FailedBeforeOutcome = e;
            }

            throw;
        }

        long completeRecord = -1;
        lock (m)
        {
            m.Completing = false;
            if (markerFailure is null)
            {
                if (commit && pendingVisibility is not null)
                {
                    RememberUnconfirmedCommit(m, producerId, epoch, parts, markers);
                }

                m.TransitionTo(commit ? TransactionState.CompleteCommit : TransactionState.CompleteAbort);
                m.Partitions.Clear();
                m.StartMs = -1;
                m.StartMonotonicMs = -1;
                m.UpdateMs = NowMs;
                completeRecord = AppendRecord(m);
            }
        }

        StepHook?.Invoke("completed");

        // The markers' fsync makes the outcome visible to read-committed readers; nobody waits for it.
        foreach ((LogPartition p, long offset) in markers)
        {
            FlushInBackground(p, offset);
        }

        if (completeRecord >= 0)
        {
            FlushInBackground(_log, completeRecord);
        }

        if (pendingVisibility is not null)
        {
            lock (_visibilityLock)
            {
                if (markerFailure is null)
                {
                    pendingVisibility.MarkersWritten = true;
                    _visibilityTimer?.Change(VisibilityFlushDelay, VisibilityFlushDelay);
                }
                else
                {
                    _pendingVisibility.Remove(pendingVisibility);
                    HashSet<PendingVisibility> alone = _releaseGroup;
                    alone.Clear();
                    alone.Add(pendingVisibility);
                    ReleaseUnsynchronized(alone);
                }
            }
        }
        else if (commit)
        {
            onVisible?.Invoke(); // no hold (one partition): visible now
        }

        TryReleaseVisibility();
        return parts.Count;
    }

    // ---------------------------------------------------------------- atomic visibility
    //
    // A committed transaction over several partitions is held below the LSO of each (from its first
    // offset there) until it can become visible on all of them at one instant. That needs (1) every
    // marker durable and (2) nothing still open below its marker on any of its partitions, except other
    // held transactions, which are then released together (transactions that interleave across
    // partitions form a group). Release = give the group the next visibility version, then publish that
    // version with one write: every partition's LSO changes at the same instant.

    private sealed class PendingVisibility(VisibilityHold hold)
    {
        public VisibilityHold Hold { get; } = hold;

        /// <summary>Per partition: first and last offset of the transaction's records there.</summary>
        public List<(LogPartition Partition, long First, long Last)> Parts { get; } = new();

        /// <summary>Set once every COMMIT marker is written (the transaction is no longer open anywhere).</summary>
        public bool MarkersWritten { get; set; }

        /// <summary>Runs under the visibility lock at the release (the map side of a unified transaction).</summary>
        public Action? OnVisible { get; init; }
    }

    private readonly object _visibilityLock = new();
    private readonly List<PendingVisibility> _pendingVisibility = new();
    private long _visibilityVersion;
    private ITimer? _visibilityTimer;

    /// <summary>Runs <paramref name="capture"/> while no held transaction can be released (a consistent cut).</summary>
    internal T WithVisibilityFrozen<T>(Func<T> capture)
    {
        lock (_visibilityLock)
        {
            return capture();
        }
    }

    /// <summary>Held transactions whose version is at most this are visible.</summary>
    public long VisibilityVersion => Volatile.Read(ref _visibilityVersion);

    private void TryReleaseVisibility()
    {
        lock (_visibilityLock)
        {
            if (_pendingVisibility.Count == 0)
            {
                return;
            }

            // Ready: decided (the decision is durable before any hold exists) and every marker written.
            // The markers' own fsync is not needed: the data is durable since the decision.
            HashSet<PendingVisibility> group = _releaseGroup;
            group.Clear();
            foreach (PendingVisibility pv in _pendingVisibility)
            {
                bool durable = pv.MarkersWritten;
                foreach ((LogPartition p, long _, long last) in pv.Parts)
                {
                    durable &= p.HighWatermark > last; // readers stop at each partition's HW
                }

                if (durable)
                {
                    group.Add(pv);
                }
            }

            bool changed = true;
            while (changed && group.Count > 0)
            {
                changed = false;
                foreach (PendingVisibility pv in group)
                {
                    if (Blocked(pv, group))
                    {
                        group.Remove(pv);
                        changed = true;
                        break;
                    }
                }
            }

            if (group.Count == 0)
            {
                return;
            }

            _pendingVisibility.RemoveAll(_inReleaseGroup);
            if (_pendingVisibility.Count == 0)
            {
                _visibilityTimer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }

            ReleaseUnsynchronized(group);
        }
    }

    // Makes every transaction of the set visible at one instant (one new version), runs their map
    // side, and wakes the consumers of their partitions; clears the set. The caller holds
    // _visibilityLock and has taken the set out of _pendingVisibility.
    private void ReleaseUnsynchronized(HashSet<PendingVisibility> released)
    {
        long version = _visibilityVersion + 1;
        foreach (PendingVisibility pv in released)
        {
            pv.Hold.ReleaseVersion = version;
        }

        Volatile.Write(ref _visibilityVersion, version);
        List<LogPartition> touched = _releaseTouched;
        touched.Clear();
        foreach (PendingVisibility pv in released)
        {
            pv.OnVisible?.Invoke(); // still under the lock: maps and partitions change together
            foreach ((LogPartition p, long _, long _) in pv.Parts)
            {
                if (!touched.Contains(p))
                {
                    touched.Add(p);
                }
            }
        }

        released.Clear();

        // Each partition once: drop its released holds and wake its consumers (partition locks are
        // taken after the visibility lock, as in HoldVisibility).
        foreach (LogPartition p in touched)
        {
            p.HoldsChanged();
        }

        touched.Clear();
    }

    // Reused by TryReleaseVisibility under _visibilityLock (no allocation per release).
    private readonly HashSet<PendingVisibility> _releaseGroup = new();
    private readonly List<LogPartition> _releaseTouched = new();
    private readonly Predicate<PendingVisibility> _inReleaseGroup;

    // True when something outside the group would still hide part of pv: an open transaction, or a
    // held transaction not in the group, starting at or below pv's last record on one of its partitions.
    private bool Blocked(PendingVisibility pv, HashSet<PendingVisibility> group)
    {
        foreach ((LogPartition p, long _, long last) in pv.Parts)
        {
            if (p.ProducerState.FirstUnstableOffset <= last)
            {
                return true;
            }

            foreach (PendingVisibility other in _pendingVisibility)
            {
                if (group.Contains(other))
                {
                    continue;
                }

                foreach ((LogPartition op, long first, long _) in other.Parts)
                {
                    if (ReferenceEquals(op, p) && first <= last)
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }

    // Round 1 of a multi-partition commit: every partition's data and the decision record, in parallel.
    // In every durability mode: a marker must never reach the disk before the data and the decision
    // (else a power loss could keep the COMMIT on one partition and lose the data on another).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask MakeDurableAsync(List<KeyValuePair<TopicPartition, long>> parts, long decisionRecord)
    {
        // Every fsync runs on its partition's flusher thread (shared with any other committer waiting
        // on it), the decision record's too: all in parallel, and no pool thread blocks in an fsync
        // (on a small machine a blocked pool thread makes the pool inject more threads and spin).
        ValueTask[] waits = ArrayPool<ValueTask>.Shared.Rent(parts.Count + 1);
        int count = 0;
        try
        {
            foreach (KeyValuePair<TopicPartition, long> part in parts)
            {
                if (part.Value >= 0)
                {
                    waits[count++] = Partition(part.Key).GroupCommit.WaitAsync(part.Value, offload: true);
                }
            }

            _store.ThrowIfDisposed();
            waits[count++] = _log.GroupCommit.WaitAsync(decisionRecord, offload: true);

            // Like Task.WhenAll without its allocations: wait for all, then report the first failure.
            Exception? failure = null;
            for (int i = 0; i < count; i++)
            {
                try
                {
                    await waits[i].ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    failure ??= e;
                }
            }

            if (failure is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
            }
        }
        finally
        {
            Array.Clear(waits, 0, count);
            ArrayPool<ValueTask>.Shared.Return(waits);
        }
    }

    private ValueTask WaitDurableForModeAsync(LogPartition partition, long offset) =>
        _store.Options.Durability == DurabilityMode.GroupCommit ? partition.WaitForDurableAsync(offset) : default;

    // Markers and completion records need an fsync only to become visible (HW), not for durability of
    // the decision: defer it briefly so the next commit's fsync of the same partition can carry it.
    private static readonly TimeSpan VisibilityFlushDelay = TimeSpan.FromMilliseconds(2);

    private void FlushInBackground(LogPartition partition, long offset)
    {
        if (_store.Options.Durability != DurabilityMode.GroupCommit)
        {
            return; // Periodic: the flusher will; None: the HW already follows the log end
        }

        partition.FlushSoon(offset, VisibilityFlushDelay);
    }

    /// <summary>Aborts every Ongoing transaction older than its timeout, fencing its producer. Returns how many.</summary>
    public int AbortExpiredTransactions()
    {
        List<TransactionMetadata> all;
        lock (_lock)
        {
            all = new List<TransactionMetadata>(_transactions.Values);
        }

        int aborted = 0;
        long now = NowMs;
        long monotonicNow = _store.MonotonicMs();
        foreach (TransactionMetadata m in all)
        {
            bool expired = false;
            long producerId, age = 0, timeout, startMonotonicMs;
            short epoch;
            lock (m)
            {
                if (m.State == TransactionState.Ongoing && m.StartMs >= 0)
                {
                    if (m.StartMonotonicMs < 0)
                    {
                        // Not begun in this process (recovery aborts those, so only defensively): anchored
                        // once by its wall-clock age.
                        m.StartMonotonicMs = monotonicNow - Math.Max(0, now - m.StartMs);
                    }

                    age = monotonicNow - m.StartMonotonicMs;
                    expired = age > m.TimeoutMs;
                }

                (producerId, epoch, timeout, startMonotonicMs) = (m.ProducerId, m.Epoch, m.TimeoutMs, m.StartMonotonicMs);
            }

            // Aborted only if it is still that transaction: between the two locks it may have committed
            // and a new (not expired) transaction begun. Told apart by the monotonic start, which a new
            // transaction cannot share with one that has expired (the wall-clock start can repeat after a
            // backward step of the clock).
            if (!expired)
            {
                continue;
            }

            StepHook?.Invoke("expired");
            if (AbortOrCompleteOpenTransaction(m, timedOut: true, (producerId, epoch, startMonotonicMs)))
            {
                aborted++;
                StoreTelemetry telemetry = _store.Telemetry;
                LogMessages.TransactionTimedOut(telemetry.Logger, m.TransactionalId, producerId, epoch, age, timeout);
                // Through the wrappers: a throwing listener must not stop the sweep (or crash the timer thread).
                StoreTelemetry.Add(telemetry.TransactionsTimedOut, 1, default);
                telemetry.TransactionEnded("log", committed: false, 0);
            }
        }

        return aborted;
    }

    // Aborts (with a bumped epoch, which fences the old producer everywhere) or completes whatever
    // transaction m has open. Returns true when it aborted an Ongoing transaction.
    private bool AbortOrCompleteOpenTransaction(TransactionMetadata m, bool timedOut, (long ProducerId, short Epoch, long StartMonotonicMs)? expired = null, bool byAdmin = false)
    {
        List<KeyValuePair<TopicPartition, long>> parts;
        long producerId;
        short epoch;
        ControlRecordType outcome;
        lock (m)
        {
            if (expired is { } e && (m.State != TransactionState.Ongoing || m.ProducerId != e.ProducerId || m.Epoch != e.Epoch || m.StartMonotonicMs != e.StartMonotonicMs))
            {
                return false; // not the transaction that expired any more
            }

            if (m.Completing)
            {
                if (timedOut)
                {
                    return false; // its committer (or another completer) is finishing it
                }

                if (m.FailedBeforeOutcome is { } failure)
                {
                    throw new InvalidTransactionStateException(
                        $"The last commit or abort of transactional id '{m.TransactionalId}' failed before its outcome was known ({failure.Message}); reopen the store to let recovery decide it.", failure);
                }

                throw new InvalidTransactionStateException($"Transactional id '{m.TransactionalId}' is committing or aborting a transaction right now; retry InitTransactions when it is done.");
            }

            switch (m.State)
            {
                case TransactionState.Ongoing:
                    if (timedOut)
                    {
                        m.TimedOutEpoch = m.Epoch;
                    }

                    if (byAdmin)
                    {
                        m.AdminAbortedEpoch = m.Epoch;
                    }

                    m.TransitionTo(TransactionState.PrepareEpochFence);
                    m.Epoch++;
                    _epochs[m.ProducerId] = m.Epoch; // fence before the markers: see AppendProducerBatch
                    m.TransitionTo(TransactionState.PrepareAbort);
                    outcome = ControlRecordType.Abort;
                    break;
                case TransactionState.PrepareCommit:
                    outcome = ControlRecordType.Commit;
                    break;
                case TransactionState.PrepareEpochFence:
                    m.TransitionTo(TransactionState.PrepareAbort);
                    outcome = ControlRecordType.Abort;
                    break;
                case TransactionState.PrepareAbort:
                    outcome = ControlRecordType.Abort;
                    break;
                default:
                    return false;
            }

            m.UpdateMs = NowMs;
            AppendRecord(m);
            parts = new List<KeyValuePair<TopicPartition, long>>(m.Partitions);
            producerId = m.ProducerId;
            epoch = m.Epoch;
            m.Completing = true; // claimed: a second completer (timeout, Init, admin abort) backs off
        }

        List<(LogPartition Partition, long Offset)> markers;
        try
        {
            markers = WriteMarkers(producerId, epoch, parts, outcome);
        }
        catch
        {
            // The outcome record is written (PrepareAbort, or the durable PrepareCommit): whoever comes
            // next may finish it, and recovery will if nobody does.
            lock (m)
            {
                m.Completing = false;
            }

            throw;
        }

        lock (m)
        {
            m.Completing = false;
            if (outcome == ControlRecordType.Commit)
            {
                RememberUnconfirmedCommit(m, producerId, epoch, parts, markers);
            }

            m.TransitionTo(outcome == ControlRecordType.Commit ? TransactionState.CompleteCommit : TransactionState.CompleteAbort);
            m.Partitions.Clear();
            m.StartMs = -1;
            m.StartMonotonicMs = -1;
            long record = AppendRecord(m);
            FlushInBackground(_log, record);
        }

        TryReleaseVisibility();
        return outcome == ControlRecordType.Abort;
    }

    // Recovery writes a decided outcome's marker only where the producer still has a transaction open:
    // where the marker already reached the disk there is nothing to finish, and where the data never
    // did (a decision made durable in parallel with data lost in the crash) a marker would contradict
    // the producer's previous outcome there and refuse the open.
    private void WriteRecoveryMarkers(long producerId, short epoch, IEnumerable<KeyValuePair<TopicPartition, long>> partitions, ControlRecordType type)
    {
        foreach ((TopicPartition tp, long lastOffset) in partitions)
        {
            // Only the decided transaction: one open there that starts after its recorded last offset is
            // a later, undecided transaction of the producer (the decided one's marker reached the disk
            // there); the loop over open transactions below aborts it.
            if (_store.TryGetPartitionInternal(tp, out LogPartition? p)
                && p!.ProducerState.Get(producerId) is { CurrentTransactionFirstOffset: >= 0 } entry
                && entry.CurrentTransactionFirstOffset <= lastOffset)
            {
                WriteMarker(p, producerId, epoch, type);
            }
        }
    }

    private List<(LogPartition Partition, long Offset)> WriteMarkers(long producerId, short epoch, List<KeyValuePair<TopicPartition, long>> partitions, ControlRecordType type)
    {
        var markers = new List<(LogPartition, long)>();
        foreach ((TopicPartition tp, long _) in partitions)
        {
            if (_store.TryGetPartitionInternal(tp, out LogPartition? p) && WriteMarker(p!, producerId, epoch, type) is { } written)
            {
                markers.Add((p!, written.LastOffset));
                FlushInBackground(p!, written.LastOffset);
            }
        }

        return markers;
    }

    // The completion record replaces the decision at replay and may reach the disk before the COMMIT
    // markers do: it (and every later record of the id) names this commit until its markers are known
    // durable, so recovery commits what a lost marker left open. Caller holds m's lock.
    // Takes the two lists (the caller does not change them afterwards).
    private static void RememberUnconfirmedCommit(TransactionMetadata m, long producerId, short epoch,
        List<KeyValuePair<TopicPartition, long>> parts, List<(LogPartition Partition, long Offset)> markers)
    {
        if (markers.Count == 0)
        {
            return;
        }

        m.UnconfirmedCommits.Add(new UnconfirmedCommit(producerId, epoch, parts, markers));

        // Bounded: nothing else may fsync the markers for a while (Periodic durability syncs only every
        // FlushInterval), and every record of the id carries the whole list, so it must not grow with
        // the commit rate (past MaxBatchBytes the id's next record could not be written at all).
        // Beyond the bound, the oldest entries' markers are fsynced here.
        ConfirmOldestCommits(m, keep: MaxUnconfirmedCommits);
    }

    // Fsyncs the markers of the oldest unconfirmed commits and drops them until at most `keep` remain.
    // Stops at a failed partition: that entry stays (recovery decides after a reopen). Caller holds m's lock.
    private static void ConfirmOldestCommits(TransactionMetadata m, int keep)
    {
        m.PruneConfirmedCommits();
        while (m.UnconfirmedCommits.Count > keep)
        {
            try
            {
                m.UnconfirmedCommits[0].MakeMarkersDurable();
            }
            catch (Exception e) when (e is IOException or TxLogException or ObjectDisposedException)
            {
                return;
            }

            m.UnconfirmedCommits.RemoveAt(0);
        }
    }

    /// <summary>The most commits of one transactional id whose markers may be pending at a time.</summary>
    internal const int MaxUnconfirmedCommits = 8;

    private AppendResult? WriteMarker(LogPartition partition, long producerId, short epoch, ControlRecordType type)
    {
        RecordBatchBuilder builder = _store.RentBuilder();
        try
        {
            builder.Reset(ControlRecord.BatchAttributes, producerId, epoch, RecordBatchLayout.NoSequence);
            ControlRecord.AddTo(builder, type, coordinatorEpoch: 0, _store.NowMs());
            var header = new ProducerBatchHeader(producerId, epoch, RecordBatchLayout.NoSequence, 0, true, true, type, 0, builder.MaxTimestamp);
            return partition.AppendProducerBatch(builder, header);
        }
        finally
        {
            _store.ReturnBuilder(builder);
        }
    }

    private void CheckProducerUnsynchronized(TransactionMetadata m, long producerId, short epoch)
    {
        if (m.ProducerId == producerId && m.Epoch == epoch)
        {
            return;
        }

        _store.Telemetry.ProducerFenced($"the coordinator (transactional id '{m.TransactionalId}')", producerId, epoch, m.ProducerId == producerId ? m.Epoch : (short)-1);
        if (m.ProducerId == producerId && m.TimedOutEpoch == epoch)
        {
            throw new TransactionTimedOutException(m.TransactionalId, producerId, epoch, m.Epoch, TimeSpan.FromMilliseconds(m.TimeoutMs));
        }

        throw new ProducerFencedException(producerId, epoch, m.ProducerId == producerId ? m.Epoch : (short)-1);
    }

    private TransactionMetadata Get(string transactionalId)
    {
        lock (_lock)
        {
            return _transactions.TryGetValue(transactionalId, out TransactionMetadata? m)
                ? m
                : throw new InvalidTransactionStateException($"Transactional id '{transactionalId}' is unknown: call InitTransactions first.");
        }
    }

    private LogPartition Partition(TopicPartition tp) => _store.GetPartition(tp.Topic, tp.Partition);

    /// <summary>
    /// Runs before <see cref="LogStore.DeleteTopic"/> removes <paramref name="topic"/>: refuses while a
    /// transaction that wrote to it is open or completing, and makes every finished commit that touched
    /// it durable down to its markers, with a record of its id that no longer lists it and the whole
    /// coordinator log fsynced. Recovery then never reads a record about the deleted partitions as
    /// unfinished work: a topic created again under the same name has the same partition names and
    /// offsets that start again at 0, and recovery would have confused the two.
    /// </summary>
    /// <exception cref="InvalidTransactionStateException">A transaction on the topic is open or completing.</exception>
    internal void PrepareTopicDeletion(string topic)
    {
        List<TransactionMetadata> all;
        lock (_lock)
        {
            all = new List<TransactionMetadata>(_transactions.Values);
        }

        var unconfirmed = new List<TransactionMetadata>();
        foreach (TransactionMetadata m in all)
        {
            lock (m)
            {
                bool open = m.Completing || m.State is TransactionState.Ongoing or TransactionState.PrepareCommit
                    or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence;
                if (open && Touches(m.Partitions, topic))
                {
                    throw new InvalidTransactionStateException(
                        $"Topic '{topic}' has an open transaction (transactional id '{m.TransactionalId}', {m.State}); commit or abort it before deleting the topic.");
                }

                foreach (UnconfirmedCommit c in m.UnconfirmedCommits)
                {
                    if (Touches(c.Parts, topic))
                    {
                        unconfirmed.Add(m);
                        break;
                    }
                }
            }
        }

        foreach (TransactionMetadata m in unconfirmed)
        {
            List<UnconfirmedCommit> commits;
            lock (m)
            {
                commits = new List<UnconfirmedCommit>(m.UnconfirmedCommits);
            }

            foreach (UnconfirmedCommit c in commits)
            {
                c.MakeMarkersDurable();
            }

            lock (m)
            {
                AppendRecord(m); // prunes the commits whose markers are now durable
            }
        }

        _log.Log.Sync();
    }

    private static bool Touches(IEnumerable<KeyValuePair<TopicPartition, long>> partitions, string topic)
    {
        foreach (KeyValuePair<TopicPartition, long> part in partitions)
        {
            if (part.Key.Topic == topic)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Tests only: how many commits of the id are still listed as unconfirmed.</summary>
    internal int UnconfirmedCommitCount(string transactionalId)
    {
        TransactionMetadata m = Get(transactionalId);
        lock (m)
        {
            return m.UnconfirmedCommits.Count;
        }
    }

    /// <summary>The transactional ids and their states.</summary>
    public IReadOnlyList<TransactionDescription> ListTransactions()
    {
        List<TransactionMetadata> all;
        lock (_lock)
        {
            all = new List<TransactionMetadata>(_transactions.Values);
        }

        var list = new List<TransactionDescription>(all.Count);
        foreach (TransactionMetadata m in all)
        {
            lock (m)
            {
                list.Add(new TransactionDescription(m.TransactionalId, m.ProducerId, m.Epoch, m.State, new List<TopicPartition>(m.Partitions.Keys),
                    m.StartMs >= 0 ? DateTimeOffset.FromUnixTimeMilliseconds(m.StartMs) : null, TimeSpan.FromMilliseconds(m.TimeoutMs)));
            }
        }

        list.Sort(static (a, b) => string.CompareOrdinal(a.TransactionalId, b.TransactionalId));
        return list;
    }

    private void OnTimer()
    {
        try
        {
            AbortExpiredTransactions();
            RestateIfGrown();
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException or InvalidOperationException)
        {
            // Retried at the next tick; a failed partition reports itself to its writers.
        }
    }

    /// <summary>Stops the timers; transactions still held are released (nothing reads after close).</summary>
    public void Dispose()
    {
        _timer?.Dispose();
        _visibilityTimer?.Dispose();
        lock (_visibilityLock)
        {
            HashSet<PendingVisibility> all = _releaseGroup;
            all.Clear();
            all.UnionWith(_pendingVisibility);
            _pendingVisibility.Clear();
            ReleaseUnsynchronized(all);
        }
    }

    /// <summary>
    /// Administrative abort (<see cref="LogStore.AbortTransactionAsync"/>): aborts the open transaction
    /// of <paramref name="transactionalId"/> as the timeout does — bumped epoch (fencing the producer),
    /// PrepareAbort, ABORT markers, CompleteAbort. A decided PrepareCommit is completed, not aborted.
    /// Returns true when a transaction was aborted; false when the id is unknown or nothing is open.
    /// Throws <see cref="InvalidTransactionStateException"/> while its producer is committing or aborting.
    /// </summary>
    internal bool AbortOpenTransaction(string transactionalId, out long producerId, out short epoch)
    {
        TransactionMetadata? m;
        lock (_lock)
        {
            if (!_transactions.TryGetValue(transactionalId, out m))
            {
                producerId = -1;
                epoch = -1;
                return false;
            }
        }

        lock (m)
        {
            (producerId, epoch) = (m.ProducerId, m.Epoch); // the epoch of the transaction being aborted
        }

        return AbortOrCompleteOpenTransaction(m, timedOut: false, byAdmin: true);
    }

    /// <summary>Whether the transaction of this producer epoch was aborted by <see cref="AbortOpenTransaction"/> (already counted then).</summary>
    internal bool WasAbortedByAdmin(string transactionalId, long producerId, short epoch)
    {
        TransactionMetadata? m;
        lock (_lock)
        {
            if (!_transactions.TryGetValue(transactionalId, out m))
            {
                return false;
            }
        }

        lock (m)
        {
            return m.ProducerId == producerId && m.AdminAbortedEpoch == epoch;
        }
    }
}
