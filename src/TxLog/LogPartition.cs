using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog;

/// <summary>Shared by the partitions of one committed transaction; releasing it makes the commit visible on all at once.</summary>
internal sealed class VisibilityHold
{
    private long _releaseVersion = long.MaxValue;

    /// <summary>The coordinator's visibility version from which the hold no longer applies.</summary>
    public long ReleaseVersion
    {
        get => Volatile.Read(ref _releaseVersion);
        set => Volatile.Write(ref _releaseVersion, value);
    }

    public bool IsActive(long visibilityVersion) => ReleaseVersion > visibilityVersion;
}

/// <summary>Sees a batch just appended to a partition.</summary>
internal delegate void BatchObserver(RecordBatch batch);

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
    private readonly object _appendLock = new(); // orders producer-state checks with appends

    internal LogPartition(LogStore store, PartitionLog log)
    {
        _store = store;
        Log = log;
        GroupCommit = new GroupCommit(log);
        ProducerState = new ProducerStateManager(log.Name);
        Signal = new AsyncSignal();
        log.HighWatermarkAdvanced = Signal.Pulse;
        log.LogStartAdvanced = Signal.Pulse; // a waiting consumer may be out of range now, and the LSO may have risen
        Incarnation = Interlocked.Increment(ref s_incarnations);
        log.LogStartMovedLocked = ProducerState.ForgetAbortedBelow; // no reader needs aborts that ended below the log start
    }

    private static long s_incarnations;

    /// <summary>
    /// Tells this partition object apart from every other one, including a partition of the same name
    /// in a topic deleted and created again (whose producer state starts empty): a producer restarts
    /// its sequence for a partition whose incarnation is not the one its sequence belongs to.
    /// </summary>
    internal long Incarnation { get; }

    internal PartitionLog Log { get; }

    /// <summary>The store the partition belongs to.</summary>
    internal LogStore Store => _store;

    internal GroupCommit GroupCommit { get; }

    internal ProducerStateManager ProducerState { get; }

    /// <summary>Sees every batch appended (under the append lock); used by the consumer-offsets log.</summary>
    internal BatchObserver? Observer { get; set; }

    /// <summary>
    /// The lock every append (and <see cref="Roll"/>) takes. An owner of an internal log holds it (it is
    /// reentrant) around a sequence that no other append may interleave with: the consumer-offsets log
    /// records where its plain writes land, and writes a restatement with nothing in between. Take it
    /// before any lock of the owner: observers run under it.
    /// </summary>
    internal object AppendLock => _appendLock;

    /// <summary>Pulsed when the HW, the LSO or the log start offset moves (consumers wait on it).</summary>
    internal AsyncSignal Signal { get; }

    /// <summary>
    /// Set by <see cref="LogStore.DeleteTopic"/> before it checks for open transactions (and cleared
    /// if it refuses): no transaction may start writing here any more.
    /// </summary>
    internal bool Retired
    {
        get => Volatile.Read(ref _retired);
        set => Volatile.Write(ref _retired, value);
    }

    private bool _retired;

    /// <summary>Set by <see cref="LogStore.DeleteTopic"/> once the partition's files are gone (consumers then fail instead of waiting).</summary>
    internal bool Deleted => Volatile.Read(ref _deleted);

    private bool _deleted;

    // A write that found the log closed because its topic was deleted (DeleteTopic marks the partition
    // deleted before it closes the log): Kafka's unknown-topic error, which tells a caller that looked
    // the partition up just before the deletion to look the name up again.
    private TopicNotFoundException DeletedTopic() => new(Log.Topic);

    /// <summary>Marks the partition deleted and wakes its waiting consumers (they then find it gone).</summary>
    internal void MarkDeleted()
    {
        Volatile.Write(ref _deleted, true);
        Signal.Pulse(); // fenced: see AsyncSignal.Pulse
    }

    /// <summary>
    /// The last stable offset: the first offset of the earliest open transaction, or the high
    /// watermark when none is open (never above it, and never below the log start offset).
    /// Read-committed readers see records below it.
    /// </summary>
    public long LastStableOffset
    {
        get
        {
            // The order of the reads matters. A transaction's first batch sets _appendingUnstable before it
            // is written (and so before the HW can pass it), and records the open transaction in the
            // producer state before clearing _appendingUnstable; a hold is added before the transaction's
            // marker is written. So a reader that sees the HW past a batch then sees either the batch being
            // applied or its transaction open (or closed, and then its hold). Reading the producer state
            // first could miss a transaction that opened between that read and the HW read.
            long hw = Log.HighWatermark;
            long appending = Volatile.Read(ref _appendingUnstable);
            long unstable = ProducerState.FirstUnstableOffset;
            long held = FirstHeldOffset();
            return Math.Max(Log.LogStartOffset, // an open transaction whose first records retention deleted (as Kafka)
                Math.Min(Math.Min(Math.Min(unstable, appending), hw), held));
        }
    }

    // While a transactional batch is being appended: its first offset (long.MaxValue otherwise). The
    // batch becomes readable (log end, and the HW in mode None or by a concurrent fsync) before the
    // producer state records its open transaction; this keeps the LSO below it in between.
    private long _appendingUnstable = long.MaxValue;

    // Holds of committed multi-partition transactions not yet visible everywhere (see HoldVisibility).
    // Guarded by _holdsLock (taken after _appendLock or the coordinator's visibility lock, never before);
    // _holdCount lets readers skip the lock when there are none. Changed in place: no allocation per hold.
    private readonly object _holdsLock = new();
    private readonly List<(long Offset, VisibilityHold Hold)> _holds = new();
    private int _holdCount;

    // The first offset of a committed multi-partition transaction that is not visible yet on every one
    // of its partitions (its shared hold is not released), or long.MaxValue. A hold is added before the
    // transaction's marker is written here (and the marker publishes the producer state after it), so a
    // reader that sees the transaction closed in the producer state also sees its hold.
    private long FirstHeldOffset()
    {
        if (Volatile.Read(ref _holdCount) == 0)
        {
            return long.MaxValue;
        }

        long version = _store.Coordinator.VisibilityVersion;
        long first = long.MaxValue;
        lock (_holdsLock)
        {
            foreach ((long offset, VisibilityHold hold) in _holds)
            {
                if (hold.IsActive(version) && offset < first)
                {
                    first = offset;
                }
            }
        }

        return first;
    }

    /// <summary>
    /// Records below this are durable (the HW) and not hidden by the visibility hold of a committed
    /// multi-partition transaction; unlike the LSO, open transactions do not cap it. A committed
    /// transaction whose last record here is below it is visible (as soon as its marker is written).
    /// </summary>
    internal long CommittedVisibleEnd
    {
        get
        {
            long hw = Log.HighWatermark;
            return Math.Min(hw, FirstHeldOffset());
        }
    }

    /// <summary>
    /// Keeps the LSO at the producer's open transaction (on this partition) until <paramref name="hold"/>
    /// is released, even after its marker; one hold object is shared by all partitions of a transaction,
    /// so releasing it makes the transaction visible on all of them at one instant.
    /// </summary>
    internal long HoldVisibility(long producerId, VisibilityHold hold)
    {
        lock (_appendLock)
        {
            long first = ProducerState.Get(producerId)?.CurrentTransactionFirstOffset ?? -1;
            if (first < 0)
            {
                return -1;
            }

            lock (_holdsLock)
            {
                DropReleasedHoldsUnsynchronized();
                _holds.Add((first, hold));
                Volatile.Write(ref _holdCount, _holds.Count);
            }

            return first;
        }
    }

    /// <summary>Drops released holds (called after a release) and wakes waiting consumers.</summary>
    internal void HoldsChanged()
    {
        lock (_holdsLock)
        {
            DropReleasedHoldsUnsynchronized();
            Volatile.Write(ref _holdCount, _holds.Count);
        }

        Signal.Pulse();
    }

    // Caller holds _holdsLock.
    private void DropReleasedHoldsUnsynchronized()
    {
        long version = _store.Coordinator.VisibilityVersion;
        int kept = 0;
        for (int i = 0; i < _holds.Count; i++)
        {
            if (_holds[i].Hold.IsActive(version))
            {
                _holds[kept++] = _holds[i];
            }
        }

        _holds.RemoveRange(kept, _holds.Count - kept);
    }

    /// <summary>The end offset a reader with <paramref name="isolation"/> sees up to: the HW or the LSO.</summary>
    public long EndOffset(IsolationLevel isolation) =>
        isolation == IsolationLevel.ReadCommitted ? LastStableOffset : HighWatermark;

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
    /// <exception cref="TopicNotFoundException">The partition's topic was deleted.</exception>
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
        lock (_appendLock)
        {
            AppendInfo info;
            try
            {
                info = Log.Append(batch, builder.Count, builder.MaxTimestamp);
            }
            catch (ObjectDisposedException) when (Deleted)
            {
                throw DeletedTopic();
            }

            if (info.Rolled)
            {
                SnapshotProducerStateUnsynchronized(info.BaseOffset);
            }

            Observer?.Invoke(new RecordBatch(batch.Span));
            return new AppendResult(info.BaseOffset, info.LastOffset);
        }
    }

    /// <summary>
    /// Appends a batch written by an idempotent or transactional producer, or a transaction marker,
    /// after validating it against the producer's state: a retry of one of the last five batches is
    /// acknowledged with its original offsets and not written; a stale epoch is fenced; a sequence gap
    /// fails. Returns null for a marker that had nothing to complete (written nowhere).
    /// </summary>
    internal AppendResult? AppendProducerBatch(RecordBatchBuilder builder, in ProducerBatchHeader header)
    {
        if (builder.Length > Log.Config.MaxBatchBytes)
        {
            throw new ArgumentException($"The batch is {builder.Length} bytes; the largest allowed is {Log.Config.MaxBatchBytes} bytes (LogStoreOptions.MaxBatchBytes).", "messages");
        }

        Memory<byte> batch = builder.Seal(0);
        AbortedTransaction? aborted;
        AppendInfo info;
        lock (_appendLock)
        {
            if (Deleted)
            {
                // Before the duplicate check: the deleted partition's producer state is still in memory,
                // and a retry acknowledged with offsets of a topic that is gone would be a lie.
                throw DeletedTopic();
            }

            // The coordinator knows every producer's current epoch: a zombie is fenced on every
            // partition at once, not only on those the new epoch has written to.
            if (!header.IsControl && _store.Coordinator is { } coordinator && coordinator.IsFenced(header.ProducerId, header.Epoch, out short current))
            {
                _store.Telemetry.ProducerFenced("partition " + Log.Name, header.ProducerId, header.Epoch, current);
                throw new ProducerFencedException(header.ProducerId, header.Epoch, current);
            }

            ProducerAppendKind kind = ProducerState.Check(header, out BatchMetadata duplicate);
            if (kind == ProducerAppendKind.Duplicate)
            {
                return new AppendResult(duplicate.FirstOffset, duplicate.LastOffset) { IsDuplicate = true };
            }

            if (kind == ProducerAppendKind.RedundantMarker)
            {
                return null;
            }

            bool mayOpenTransaction = header.IsTransactional && !header.IsControl;
            if (mayOpenTransaction)
            {
                Volatile.Write(ref _appendingUnstable, Log.LogEndOffset); // the base offset it gets (appends hold _appendLock)
            }

            try
            {
                info = Log.Append(batch, builder.Count, builder.MaxTimestamp);
                if (info.Rolled)
                {
                    SnapshotProducerStateUnsynchronized(info.BaseOffset);
                }

                aborted = ProducerState.Update(header, info.BaseOffset, info.LastOffset, Log.HighWatermark);
            }
            catch (ObjectDisposedException) when (Deleted)
            {
                throw DeletedTopic();
            }
            finally
            {
                if (mayOpenTransaction)
                {
                    Volatile.Write(ref _appendingUnstable, long.MaxValue);
                }
            }

            Observer?.Invoke(new RecordBatch(batch.Span));
            if (aborted is { } entry)
            {
                try
                {
                    TransactionIndex.Append(_store.FileSystem, TransactionIndex.PathFor(Log.Directory, info.SegmentBaseOffset), entry);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The marker is written and the entry is known in memory, but the file lacks it: a clean
                    // close would trust the file (nothing is replayed then) and lose the abort. The partition
                    // stops, so the next open recovers it and rebuilds the index from the log.
                    throw Log.Fail("aborted-transaction index write", e);
                }
            }
        }

        if (header.IsControl)
        {
            Signal.Pulse(); // the LSO may have moved
        }

        return new AppendResult(info.BaseOffset, info.LastOffset);
    }

    /// <summary>
    /// Starts a new segment at the log end (when the active one has data), ordered with appends: an
    /// ABORT marker's aborted-transaction index entry is written after the marker under the append
    /// lock, so a roll taken without it could leave the entry in a segment whose index was already
    /// fsynced for the last time (a power loss would then lose it).
    /// </summary>
    internal void Roll()
    {
        lock (_appendLock)
        {
            Log.Roll();
        }
    }

    private void SnapshotProducerStateUnsynchronized(long offset)
    {
        try
        {
            ProducerState.WriteSnapshot(_store.FileSystem, Log.Directory, offset, Log.Segments[^1].BaseOffset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A missing snapshot only makes the next recovery replay more of the log. It must not fail
            // the append: the batch is already in the log and the producer state must still record it.
        }
    }

    /// <summary>
    /// Rebuilds producer state at open: the newest usable snapshot, then a replay of the batches after
    /// it, and loads the aborted transactions from the segments' <c>.txnindex</c> files.
    /// </summary>
    /// <remarks>
    /// A <c>.txnindex</c> is trusted as it is only when <c>txnindex.checksums</c> vouches for it (same
    /// size and CRC-32C; for the active segment only after a clean close, as its file is not fsynced
    /// before). The replay starts at or before the first segment whose index is not vouched for, so it
    /// covers every such segment (after a crash at least the active one), and each index it covers is
    /// compared with the aborted transactions the replay found in the log and rewritten when it differs.
    /// A difference is reported (a recovery action, logged) unless it is what a crash leaves in the active
    /// segment's index: a torn or missing tail, an entry whose marker was in the truncated log tail, or
    /// a different <c>LastStableOffset</c> (it records the high watermark at the abort, which a replay
    /// cannot know). After a clean close with every index vouched for, nothing is replayed: the cost is
    /// reading the small index files and the checksum file, and a CRC over them.
    /// </remarks>
    internal void LoadProducerState(bool clean, RecoveryReport report)
    {
        IFileSystem fs = _store.FileSystem;
        LogSegment[] segments = Log.Segments;
        long leo = Log.LogEndOffset;
        string checksumsPath = TransactionIndexChecksums.PathFor(Log.Directory);

        Dictionary<long, TransactionIndexChecksum>? recorded = null;
        byte[]? recordedBytes = TransactionIndexChecksums.ReadBytes(fs, Log.Directory);
        if (recordedBytes is not null)
        {
            try
            {
                recorded = TransactionIndexChecksums.Decode(recordedBytes, checksumsPath);
            }
            catch (CorruptIndexException e)
            {
                recordedBytes = null;
                report.Add($"{Log.Name}: {e.Message}; every aborted-transaction index of the partition is checked against the log");
            }
        }
        else if (clean || segments.Length > 1)
        {
            report.Add($"{Log.Name}: no {TransactionIndexChecksums.FileName} (written by an older version, or lost); every aborted-transaction index of the partition is checked against the log");
        }

        // The entries of the vouched-for indexes go to the aborted list; the others wait for the replay.
        var aborted = new List<AbortedTransaction>();
        var files = new IndexFileState[segments.Length];
        long firstUnverified = long.MaxValue;
        for (int i = 0; i < segments.Length; i++)
        {
            LogSegment segment = segments[i];
            bool active = i == segments.Length - 1;
            byte[] bytes = TransactionIndex.ReadBytes(fs, TransactionIndex.PathFor(Log.Directory, segment.BaseOffset));
            var entries = new List<AbortedTransaction>(bytes.Length / TransactionIndex.EntrySize);
            string? problem = TransactionIndex.Parse(bytes, segment.BaseOffset, segment.NextOffset, entries, out int badEntry);
            TransactionIndexChecksum? checksum = recorded is not null && recorded.TryGetValue(segment.BaseOffset, out TransactionIndexChecksum c) ? c : null;
            bool vouched = (clean || !active) && problem is null && checksum is { } known && known.Matches(bytes);
            if (vouched)
            {
                aborted.AddRange(entries);
            }
            else
            {
                firstUnverified = Math.Min(firstUnverified, segment.BaseOffset);
            }

            files[i] = new IndexFileState(bytes, entries, problem, badEntry, vouched, checksum);
        }

        long limit = Math.Min(leo, firstUnverified);
        long start = Log.LogStartOffset;
        List<long> snapshots = ProducerStateManager.ListSnapshots(fs, Log.Directory);
        for (int i = snapshots.Count - 1; i >= 0; i--)
        {
            long offset = snapshots[i];
            if (offset > leo)
            {
                fs.DeleteFile(ProducerStateManager.SnapshotPath(Log.Directory, offset));
                report.Add($"{Log.Name}: deleted producer snapshot at {offset}, beyond the recovered log end {leo}");
                continue;
            }

            if (offset > limit || offset < start)
            {
                continue;
            }

            try
            {
                ProducerState.LoadSnapshot(fs, ProducerStateManager.SnapshotPath(Log.Directory, offset));
                start = offset;
                break;
            }
            catch (CorruptIndexException e)
            {
                report.Add($"{Log.Name}: ignored a corrupt producer snapshot ({e.Message})");
                ProducerState.Reset();
            }
        }

        ProducerState.LoadAborted(aborted);
        ProducerState.ForgetAbortedFrom(start);

        // ABORT markers that ended no transaction the replay knew of: replayed from the log start without
        // a snapshot, a transaction whose records all went with deleted segments shows only its marker.
        HashSet<(long ProducerId, long Marker)>? orphanAborts = null;
        if (start < leo)
        {
            Log.ForEachBatch(start, (batch, segment) =>
            {
                if (ProducerState.Replay(batch) is null && batch.IsControl && batch.ProducerId >= 0 && IsAbortMarker(batch))
                {
                    (orphanAborts ??= new()).Add((batch.ProducerId, batch.LastOffset));
                }
            });
        }

        // Every index the replay covered, and every one not vouched for (all of those are covered: the
        // replay starts at or before the first), is compared with what the log says.
        ReadOnlySpan<AbortedTransaction> all = ProducerState.AbortedSnapshot.Span;
        var checksums = new List<TransactionIndexChecksum>(segments.Length);
        int next = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            LogSegment segment = segments[i];
            while (next < all.Length && all[next].LastOffset < segment.BaseOffset)
            {
                next++;
            }

            int from = next;
            while (next < all.Length && all[next].LastOffset < segment.NextOffset)
            {
                next++;
            }

            IndexFileState file = files[i];
            byte[] bytes = file.Bytes;
            if (!file.Vouched || segment.NextOffset > start)
            {
                ReadOnlySpan<AbortedTransaction> fromLog = all[from..next];
                if (orphanAborts is not null)
                {
                    fromLog = WithOrphanAborts(segment, fromLog, file.Entries, orphanAborts);
                }

                bytes = ReconcileTransactionIndex(segment, file, fromLog, clean, active: i == segments.Length - 1, report);
            }

            checksums.Add(TransactionIndexChecksum.Of(segment.BaseOffset, bytes));
        }

        Log.InitTransactionIndexChecksums(checksums, recordedBytes);
    }

    // A segment's .txnindex as read at open.
    // BadEntry: index of the first malformed entry, or -1 (Problem may still be a partial last entry).
    private readonly record struct IndexFileState(byte[] Bytes, List<AbortedTransaction> Entries, string? Problem, int BadEntry, bool Vouched, TransactionIndexChecksum? Recorded);

    // Compares a segment's index file with the entries the log gives (`rebuilt`), rewrites the file when
    // it must change, and reports a difference that is not a crash artifact. Returns the file's bytes now.
    private byte[] ReconcileTransactionIndex(LogSegment segment, IndexFileState file, ReadOnlySpan<AbortedTransaction> rebuilt, bool clean, bool active, RecoveryReport report)
    {
        List<AbortedTransaction> disk = file.Entries;
        long logStart = Log.LogStartOffset;
        int common = Math.Min(disk.Count, rebuilt.Length);
        int firstDifferent = common;
        bool sameStableOffsets = true;
        for (int i = 0; i < common; i++)
        {
            if (!SameTransaction(disk[i], rebuilt[i], logStart))
            {
                firstDifferent = i;
                break;
            }

            sameStableOffsets &= disk[i].LastStableOffset == rebuilt[i].LastStableOffset;
        }

        bool sameTransactions = firstDifferent == common && disk.Count == rebuilt.Length;
        if (sameTransactions && file.Problem is null && (sameStableOffsets || file.Vouched || file.Recorded?.Entries != disk.Count))
        {
            // What the log says. Differing LastStableOffset values are kept (they are the values written
            // at the abort) unless a recorded checksum of the same number of entries says they changed.
            return file.Bytes;
        }

        byte[] bytes = TransactionIndex.Encode(rebuilt);
        string path = TransactionIndex.PathFor(Log.Directory, segment.BaseOffset);
        TransactionIndex.Rewrite(_store.FileSystem, path, bytes);

        // Not fsynced before a clean close, the active segment's index may lose its tail (whole entries or
        // part of one) in a crash, or keep entries whose markers were in the log's torn tail: the entries
        // the log confirms are a prefix of the file, and any after them name offsets beyond the log end.
        bool crashArtifact = !clean && active && firstDifferent == common && (file.BadEntry < 0 || file.BadEntry >= rebuilt.Length);
        for (int i = rebuilt.Length; crashArtifact && i < disk.Count; i++)
        {
            crashArtifact = disk[i].LastOffset >= segment.NextOffset;
        }

        if (!crashArtifact)
        {
            string what = file.Problem
                ?? (firstDifferent < common ? $"entry {firstDifferent} is {Describe(disk[firstDifferent])}, the log says {Describe(rebuilt[firstDifferent])}"
                : disk.Count != rebuilt.Length ? $"{disk.Count} entries, the log has {rebuilt.Length} ABORT markers in the segment"
                : "LastStableOffset values differ from the recorded checksum's");
            report.Add($"{path}: the aborted-transaction index did not match the log ({what}); rewrote it from the log ({rebuilt.Length} entries)");
        }

        return bytes;
    }

    private static bool IsAbortMarker(RecordBatch batch)
    {
        foreach (Record record in batch)
        {
            return ControlRecord.ReadType(record.Key) == ControlRecordType.Abort;
        }

        return false;
    }

    // The entries the log gives for a segment, plus those of the file whose transaction started below the
    // log start and whose ABORT marker (by the same producer) the replay met without knowing the
    // transaction: the log confirms the abort; only its first offset, below the log start, is unknown
    // (and no readable record is in its range: the producer wrote nothing from the log start to it).
    private ReadOnlySpan<AbortedTransaction> WithOrphanAborts(LogSegment segment, ReadOnlySpan<AbortedTransaction> fromLog, List<AbortedTransaction> disk, HashSet<(long ProducerId, long Marker)> orphanAborts)
    {
        long logStart = Log.LogStartOffset;
        List<AbortedTransaction>? merged = null;
        foreach (AbortedTransaction e in disk)
        {
            if (e.FirstOffset >= 0 && e.FirstOffset < logStart && e.LastOffset >= segment.BaseOffset && e.LastOffset < segment.NextOffset
                && e.LastStableOffset >= 0 && e.LastStableOffset <= e.LastOffset + 1
                && orphanAborts.Remove((e.ProducerId, e.LastOffset)))
            {
                (merged ??= new List<AbortedTransaction>(fromLog.ToArray())).Add(e);
            }
        }

        if (merged is null)
        {
            return fromLog;
        }

        merged.Sort(static (a, b) => a.LastOffset.CompareTo(b.LastOffset));
        return merged.ToArray();
    }

    // Equal, or the same transaction whose start retention removed: the log (without a snapshot) shows
    // it from the log start on.
    private static bool SameTransaction(in AbortedTransaction disk, in AbortedTransaction log, long logStart) =>
        disk.ProducerId == log.ProducerId && disk.LastOffset == log.LastOffset
        && (disk.FirstOffset == log.FirstOffset || (disk.FirstOffset < logStart && log.FirstOffset >= logStart));

    private static string Describe(in AbortedTransaction a) =>
        string.Create(CultureInfo.InvariantCulture, $"producer {a.ProducerId} offsets {a.FirstOffset}..{a.LastOffset}");

    /// <summary>
    /// Clean close: snapshot the producer state at the log end, then flush and close the log. Waits at
    /// most <paramref name="timeout"/> for an append or fsync in progress (an append can hold the append
    /// lock through a segment roll's fsync); returns false when that ran out or the partition had failed.
    /// </summary>
    internal bool Close(TimeSpan timeout)
    {
        _lazyTimer?.Dispose();
        GroupCommit.Dispose();
        long started = Stopwatch.GetTimestamp();
        if (!Monitor.TryEnter(_appendLock, timeout))
        {
            Signal.Pulse();
            return false;
        }

        try
        {
            if (Log.Failure is null)
            {
                SnapshotProducerStateUnsynchronized(Log.LogEndOffset);
            }
        }
        finally
        {
            Monitor.Exit(_appendLock);
        }

        TimeSpan left = timeout - Stopwatch.GetElapsedTime(started);
        bool clean = Log.Close(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        Signal.Pulse(); // waiting consumers find the store closed
        return clean;
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
        return WaitAsDurabilityModeSays(Append(messages));
    }

    /// <summary>
    /// Completes with <paramref name="result"/> (a batch this partition appended) when the store's
    /// durability mode acknowledges it, as <see cref="AppendAsync(ReadOnlySpan{Message}, CancellationToken)"/> does.
    /// </summary>
    internal ValueTask<AppendResult> WaitAsDurabilityModeSays(AppendResult result)
    {
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
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="offset"/> is at or beyond the log end offset (not written yet).</exception>
    public ValueTask WaitForDurableAsync(long offset)
    {
        _store.ThrowIfDisposed();
        long end = Log.LogEndOffset;
        if (offset >= end)
        {
            // No fsync can make an unwritten offset durable: the group commit would flush in a loop for ever.
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"Offset {offset} of partition {Log.Name} is not written yet (the log end offset is {end}).");
        }

        return GroupCommit.WaitAsync(offset);
    }

    private readonly object _lazyLock = new();
    private ITimer? _lazyTimer;
    private long _lazyTarget = -1;

    /// <summary>
    /// Makes <paramref name="offset"/> durable soon, without anyone waiting: if no other fsync has covered
    /// it after <paramref name="delay"/>, one is run. Used for transaction markers, whose fsync makes a
    /// decided outcome visible; the next commit's fsync of the same partition usually covers them first.
    /// </summary>
    internal void FlushSoon(long offset, TimeSpan delay)
    {
        lock (_lazyLock)
        {
            if (offset <= _lazyTarget)
            {
                return;
            }

            bool armed = _lazyTarget >= 0;
            _lazyTarget = offset;
            if (!armed)
            {
                _lazyTimer ??= Diagnostics.NoFlow.CreateTimer(_store.Options.TimeProvider, static p => ((LogPartition)p!).LazyFlush(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _lazyTimer.Change(delay, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void LazyFlush()
    {
        long target;
        lock (_lazyLock)
        {
            target = _lazyTarget;
            _lazyTarget = -1;
        }

        if (target < 0 || Log.DurableOffset > target)
        {
            return;
        }

        _ = FlushQuietlyAsync(target);
    }

    private async Task FlushQuietlyAsync(long offset)
    {
        try
        {
            await GroupCommit.WaitAsync(offset).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TxLogException or ObjectDisposedException or IOException)
        {
            // The partition recorded the failure; its next writer sees it.
        }
    }

    /// <summary>
    /// <see cref="WaitForDurableAsync"/> for a writer of this partition: when its topic is deleted before
    /// or during the wait (the log is closed under it), the wait fails with
    /// <see cref="TopicNotFoundException"/> (the data is gone) rather than <see cref="ObjectDisposedException"/>.
    /// </summary>
    internal ValueTask WaitForDurableOrTopicGoneAsync(long offset)
    {
        ValueTask wait;
        try
        {
            wait = WaitForDurableAsync(offset);
        }
        catch (ObjectDisposedException) when (Deleted)
        {
            return ValueTask.FromException(DeletedTopic());
        }

        return wait.IsCompletedSuccessfully ? default : AwaitOrTopicGoneAsync(wait);
    }

    private async ValueTask AwaitOrTopicGoneAsync(ValueTask wait)
    {
        try
        {
            await wait.ConfigureAwait(false);
        }
        catch (ObjectDisposedException) when (Deleted)
        {
            throw DeletedTopic();
        }
    }

    /// <summary>Fsyncs everything appended so far.</summary>
    public ValueTask FlushAsync() => WaitForDurableAsync(Log.LogEndOffset - 1);

    /// <summary>
    /// Opens a reader at <paramref name="offset"/> (an index lookup, then a scan within one index
    /// interval). The reader sees records below the high watermark.
    /// </summary>
    /// <exception cref="OffsetOutOfRangeException">The offset is below the log start offset or above the log end offset.</exception>
    public LogReader OpenReader(long offset) => OpenReader(offset, IsolationLevel.ReadUncommitted);

    /// <summary>
    /// Opens a reader at <paramref name="offset"/> with an isolation level: read-uncommitted readers
    /// stop at the high watermark; read-committed readers stop at the last stable offset and skip
    /// records of aborted transactions. Neither returns control records.
    /// </summary>
    /// <exception cref="OffsetOutOfRangeException">The offset is below the log start offset or above the log end offset.</exception>
    public LogReader OpenReader(long offset, IsolationLevel isolation)
    {
        _store.ThrowIfDisposed();
        return new LogReader(this, offset, isolation);
    }

    /// <summary>
    /// Opens a read-committed reader that stops at this partition's offset in a
    /// <see cref="ConsistentCut"/>, so that readers of several partitions see the same transactions.
    /// </summary>
    /// <exception cref="ArgumentException">The cut was captured by another store (another directory, or an
    /// earlier opening of this one), does not contain this partition, or was captured before this
    /// partition's topic was deleted and created again.</exception>
    /// <exception cref="ObjectDisposedException">The store is closed.</exception>
    /// <exception cref="OffsetOutOfRangeException">The offset is below the log start offset or above the log end offset.</exception>
    public LogReader OpenReader(long offset, ConsistentCut cut)
    {
        ArgumentNullException.ThrowIfNull(cut);
        _store.ThrowIfDisposed();
        return new LogReader(this, offset, IsolationLevel.ReadCommitted, cut.EndOffsetFor(this, nameof(cut)));
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
