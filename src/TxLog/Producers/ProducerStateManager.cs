using System.Buffers.Binary;
using System.Globalization;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Producers;

/// <summary>One of the last batches a producer wrote to a partition (for duplicate detection).</summary>
internal readonly record struct BatchMetadata(int FirstSequence, int LastSequence, long FirstOffset, long LastOffset, long Timestamp);

/// <summary>What a producer batch about to be appended turns out to be.</summary>
internal enum ProducerAppendKind
{
    /// <summary>A new batch: append it.</summary>
    Append,

    /// <summary>A retry of one of the last five batches: acknowledge with its original offsets, write nothing.</summary>
    Duplicate,

    /// <summary>A marker for a transaction that is already complete with the same outcome (or never touched this partition): write nothing.</summary>
    RedundantMarker,
}

/// <summary>The header fields of a producer batch that producer state needs.</summary>
internal readonly record struct ProducerBatchHeader(long ProducerId, short Epoch, int BaseSequence, int LastOffsetDelta, bool IsTransactional, bool IsControl, ControlRecordType MarkerType, int CoordinatorEpoch, long MaxTimestamp)
{
    /// <summary>The sequence of the batch's last record (sequences wrap from int.MaxValue to 0).</summary>
    public int LastSequence => ProducerStateEntry.AddSequence(BaseSequence, LastOffsetDelta);
}

/// <summary>The state of one producer on one partition.</summary>
internal sealed class ProducerStateEntry
{
    /// <summary>Batches remembered per producer for duplicate detection (Kafka's value).</summary>
    public const int MaxBatches = 5;

    private readonly BatchMetadata[] _batches = new BatchMetadata[MaxBatches];
    private int _count;  // valid entries, oldest first

    public ProducerStateEntry(long producerId, short epoch)
    {
        ProducerId = producerId;
        Epoch = epoch;
    }

    public long ProducerId { get; }

    public short Epoch { get; set; }

    public int CoordinatorEpoch { get; set; } = -1;

    /// <summary>First offset of the producer's open transaction on this partition, or -1.</summary>
    public long CurrentTransactionFirstOffset { get; set; } = -1;

    /// <summary>Outcome of the last transaction completed in this session (not persisted), for duplicate-marker detection.</summary>
    public ControlRecordType? LastMarker { get; set; }

    public short LastMarkerEpoch { get; set; } = -1;

    public int BatchCount => _count;

    public BatchMetadata this[int index] => _batches[index];

    /// <summary>The last sequence written, or -1 when none in this epoch.</summary>
    public int LastSequence => _count == 0 ? -1 : _batches[_count - 1].LastSequence;

    public BatchMetadata? FindDuplicate(int firstSequence, int lastSequence)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_batches[i].FirstSequence == firstSequence && _batches[i].LastSequence == lastSequence)
            {
                return _batches[i];
            }
        }

        return null;
    }

    public void AddBatch(in BatchMetadata batch)
    {
        if (_count == MaxBatches)
        {
            Array.Copy(_batches, 1, _batches, 0, MaxBatches - 1);
            _count--;
        }

        _batches[_count++] = batch;
    }

    /// <summary>Forgets the batches (a new epoch starts its sequences at 0).</summary>
    public void ClearBatches() => _count = 0;

    /// <summary>seq + delta with Kafka's wrap from int.MaxValue to 0.</summary>
    public static int AddSequence(int sequence, int delta) =>
        sequence > int.MaxValue - delta ? delta - (int.MaxValue - sequence) - 1 : sequence + delta;

    /// <summary>True when <paramref name="next"/> directly follows <paramref name="last"/>.</summary>
    public static bool Follows(int last, int next) => next == AddSequence(last, 1);
}

/// <summary>
/// Producer state of one partition: per producer id the epoch, the last five batches (sequence range
/// and offsets) and the open transaction; the open transactions ordered by first offset (for the
/// last stable offset) and the aborted transactions (for read-committed readers).
/// Snapshot file <c>{offset:D20}.snapshot</c> (state as of that offset):
/// <code>
/// ProducerSnapshot => Version int16 (= 1), Crc uint32 (CRC-32C of the entries), Entry*
/// Entry            => ProducerId int64, Epoch int16, LastSequence int32, LastOffset int64, OffsetDelta int32,
///                     Timestamp int64, CoordinatorEpoch int32, CurrentTxnFirstOffset int64   (46 bytes)
/// </code>
/// A producer appears once per remembered batch (oldest first), so the last five batches survive a
/// restart; a producer with no batch in its epoch has one entry with LastSequence -1.
/// Not thread-safe: the owning partition serialises all calls under its append lock, except
/// <see cref="ForgetAbortedBelow"/> (retention); readers use the published snapshots
/// <see cref="AbortedSnapshot"/> and <see cref="FirstUnstableOffset"/>.
/// </summary>
internal sealed class ProducerStateManager
{
    public const short SnapshotVersion = 1;
    private const int SnapshotHeaderSize = 6;
    private const int SnapshotEntrySize = 46;

    private readonly string _partitionName;
    private readonly Dictionary<long, ProducerStateEntry> _producers = new();
    private readonly SortedSet<(long FirstOffset, long ProducerId)> _ongoing = new(); // open transactions by first offset (Min: no allocation)
    private readonly List<AbortedTransaction> _aborted = new();
    private AbortedTransaction[] _abortedItems = new AbortedTransaction[16]; // append-only; readers see a prefix
    private AbortedView _abortedView = new([], 0, 0);
    private long _abortedDropped; // entries dropped from the front of the list so far (retention)

    // Guards the aborted list (_aborted, _abortedItems, _abortedDropped and the view): markers add to it
    // under the partition's append lock, retention trims it under the log's locks. A leaf lock.
    private readonly object _abortedLock = new();
    private long _firstUnstableOffset = long.MaxValue;

    public ProducerStateManager(string partitionName)
    {
        _partitionName = partitionName;
    }

    /// <summary>First offset of the earliest open transaction, or long.MaxValue when none is open.</summary>
    public long FirstUnstableOffset => Volatile.Read(ref _firstUnstableOffset);

    /// <summary>
    /// The aborted transactions in marker order, safe to read without the lock: entries are only ever
    /// appended after the published count, and a full or trimmed array is replaced, never changed in place.
    /// </summary>
    public ReadOnlyMemory<AbortedTransaction> AbortedSnapshot => GetAborted(out _);

    /// <summary>
    /// <see cref="AbortedSnapshot"/>, with the number of entries retention has dropped from its front so
    /// far: entry <c>i</c> of the snapshot is entry <c>dropped + i</c> of the partition's whole history,
    /// a position that stays the same when older entries are dropped (readers keep their place by it).
    /// </summary>
    public ReadOnlyMemory<AbortedTransaction> GetAborted(out long dropped)
    {
        AbortedView view = Volatile.Read(ref _abortedView);
        dropped = view.Dropped;
        return new ReadOnlyMemory<AbortedTransaction>(view.Items, 0, view.Count);
    }

    private sealed record AbortedView(AbortedTransaction[] Items, int Count, long Dropped);

    /// <summary>Number of producers known.</summary>
    public int ProducerCount => _producers.Count;

    public ProducerStateEntry? Get(long producerId) => _producers.GetValueOrDefault(producerId);

    /// <summary>Forgets everything (after a snapshot failed to load halfway).</summary>
    public void Reset()
    {
        _producers.Clear();
        _ongoing.Clear();
        lock (_abortedLock)
        {
            _aborted.Clear();
            RepublishAbortedUnsynchronized();
        }

        Volatile.Write(ref _firstUnstableOffset, long.MaxValue);
    }

    /// <summary>The open transactions: (producer id, epoch, first offset).</summary>
    public List<(long ProducerId, short Epoch, long FirstOffset)> OngoingTransactions()
    {
        var list = new List<(long, short, long)>(_ongoing.Count);
        foreach ((long first, long pid) in _ongoing)
        {
            list.Add((pid, _producers[pid].Epoch, first));
        }

        return list;
    }

    /// <summary>
    /// Validates a producer batch before it is appended (the caller holds the partition's append
    /// lock). Throws <see cref="ProducerFencedException"/>, <see cref="OutOfOrderSequenceException"/>
    /// or <see cref="InvalidTransactionStateException"/>; nothing is changed.
    /// </summary>
    public ProducerAppendKind Check(in ProducerBatchHeader batch, out BatchMetadata duplicate)
    {
        duplicate = default;
        ProducerStateEntry? entry = _producers.GetValueOrDefault(batch.ProducerId);
        if (entry is not null && batch.Epoch < entry.Epoch)
        {
            throw new ProducerFencedException(batch.ProducerId, batch.Epoch, entry.Epoch);
        }

        if (batch.IsControl)
        {
            if (entry is null || entry.CurrentTransactionFirstOffset < 0)
            {
                // No open transaction here: a repeated marker is harmless, a contradicting one is not.
                if (entry?.LastMarker is { } lastMarker && entry.LastMarkerEpoch == batch.Epoch && lastMarker != batch.MarkerType)
                {
                    throw new InvalidTransactionStateException($"A {batch.MarkerType} marker for producer {batch.ProducerId} epoch {batch.Epoch} on {_partitionName} contradicts the {lastMarker} marker already written.");
                }

                return ProducerAppendKind.RedundantMarker;
            }

            return ProducerAppendKind.Append;
        }

        bool sameEpoch = entry is not null && entry.Epoch == batch.Epoch;
        if (sameEpoch && entry!.FindDuplicate(batch.BaseSequence, batch.LastSequence) is { } original)
        {
            duplicate = original;
            return ProducerAppendKind.Duplicate;
        }

        int last = sameEpoch ? entry!.LastSequence : -1;
        bool inSequence = last == -1 ? batch.BaseSequence == 0 : ProducerStateEntry.Follows(last, batch.BaseSequence);
        if (!inSequence)
        {
            throw new OutOfOrderSequenceException(_partitionName, batch.ProducerId, last == -1 ? 0 : ProducerStateEntry.AddSequence(last, 1), batch.BaseSequence);
        }

        if (!batch.IsTransactional && entry is not null && entry.CurrentTransactionFirstOffset >= 0)
        {
            throw new InvalidTransactionStateException($"Producer {batch.ProducerId} wrote a non-transactional batch to {_partitionName} while its transaction is open.");
        }

        return ProducerAppendKind.Append;
    }

    /// <summary>
    /// Records an appended producer batch. Returns the aborted transaction when the batch is an ABORT
    /// marker that completed one (the caller writes it to the segment's <c>.txnindex</c>).
    /// </summary>
    public AbortedTransaction? Update(in ProducerBatchHeader batch, long firstOffset, long lastOffset, long highWatermarkHint)
    {
        if (!_producers.TryGetValue(batch.ProducerId, out ProducerStateEntry? entry))
        {
            entry = new ProducerStateEntry(batch.ProducerId, batch.Epoch);
            _producers.Add(batch.ProducerId, entry);
        }
        else if (batch.Epoch > entry.Epoch)
        {
            entry.Epoch = batch.Epoch;
            entry.ClearBatches();
        }

        AbortedTransaction? aborted = null;
        if (batch.IsControl)
        {
            entry.CoordinatorEpoch = batch.CoordinatorEpoch;
            entry.LastMarker = batch.MarkerType;
            entry.LastMarkerEpoch = batch.Epoch;
            long txnFirst = entry.CurrentTransactionFirstOffset;
            if (txnFirst >= 0)
            {
                _ongoing.Remove((txnFirst, batch.ProducerId));
                entry.CurrentTransactionFirstOffset = -1;
                if (batch.MarkerType == ControlRecordType.Abort)
                {
                    // Listed as aborted BEFORE the LSO may move past it: a lock-free reader that sees the
                    // new LSO must also see the entry, or it returns the aborted records.
                    long lso = Math.Min(FirstOngoingOffset(), lastOffset + 1);
                    aborted = new AbortedTransaction(batch.ProducerId, txnFirst, lastOffset, Math.Min(lso, Math.Max(highWatermarkHint, txnFirst)));
                    AddAborted(aborted.Value);
                }

                PublishFirstUnstable();
            }

            return aborted;
        }

        entry.AddBatch(new BatchMetadata(batch.BaseSequence, batch.LastSequence, firstOffset, lastOffset, batch.MaxTimestamp));
        if (batch.IsTransactional && entry.CurrentTransactionFirstOffset < 0)
        {
            entry.CurrentTransactionFirstOffset = firstOffset;
            _ongoing.Add((firstOffset, batch.ProducerId));
            PublishFirstUnstable();
        }

        return null;
    }

    /// <summary>Rebuilds state from a batch read back from the log (recovery); no validation.</summary>
    public AbortedTransaction? Replay(RecordBatch batch)
    {
        if (batch.ProducerId < 0)
        {
            return null;
        }

        ControlRecordType marker = ControlRecordType.Commit;
        int coordinatorEpoch = -1;
        if (batch.IsControl)
        {
            foreach (Record record in batch)
            {
                marker = ControlRecord.ReadType(record.Key);
                coordinatorEpoch = ControlRecord.ReadCoordinatorEpoch(record.Value);
                break;
            }
        }

        var header = new ProducerBatchHeader(batch.ProducerId, batch.ProducerEpoch, batch.BaseSequence, batch.LastOffsetDelta,
            batch.IsTransactional, batch.IsControl, marker, coordinatorEpoch, batch.MaxTimestamp);
        return Update(header, batch.BaseOffset, batch.LastOffset, batch.LastOffset + 1);
    }

    /// <summary>Adds aborted transactions read from <c>.txnindex</c> files (at open, in offset order).</summary>
    public void LoadAborted(IEnumerable<AbortedTransaction> entries)
    {
        lock (_abortedLock)
        {
            foreach (AbortedTransaction entry in entries)
            {
                _aborted.Add(entry);
            }

            RepublishAbortedUnsynchronized();
        }
    }

    // Rebuilds the published array from the list (open, recovery and retention only: O(n)). Caller holds _abortedLock.
    private void RepublishAbortedUnsynchronized()
    {
        _abortedItems = new AbortedTransaction[Math.Max(16, _aborted.Count * 2)];
        _aborted.CopyTo(_abortedItems);
        Volatile.Write(ref _abortedView, new AbortedView(_abortedItems, _aborted.Count, _abortedDropped));
    }

    /// <summary>Drops aborted transactions whose marker is at or after <paramref name="offset"/> (at open, before a replay from there).</summary>
    public void ForgetAbortedFrom(long offset)
    {
        lock (_abortedLock)
        {
            _aborted.RemoveAll(a => a.LastOffset >= offset);
            RepublishAbortedUnsynchronized();
        }
    }

    /// <summary>
    /// Drops the aborted transactions no reader can need any more: those whose marker (last offset) is
    /// below <paramref name="logStartOffset"/>, after retention deleted the segments holding them (Kafka
    /// drops them with the segments' <c>.txnindex</c>). A transaction that started below the log start
    /// and ended at or above it is kept: its records after the log start are still readable. Safe to
    /// call from any thread (retention runs beside appends).
    /// </summary>
    public void ForgetAbortedBelow(long logStartOffset)
    {
        lock (_abortedLock)
        {
            int drop = 0;
            while (drop < _aborted.Count && _aborted[drop].LastOffset < logStartOffset) // marker order
            {
                drop++;
            }

            if (drop == 0)
            {
                return;
            }

            _aborted.RemoveRange(0, drop);
            _aborted.TrimExcess();
            _abortedDropped += drop;

            // A new array: readers may still be scanning the old one.
            RepublishAbortedUnsynchronized();
        }
    }

    // Amortised O(1): write after the published count, then publish the longer view.
    private void AddAborted(in AbortedTransaction entry)
    {
        lock (_abortedLock)
        {
            _aborted.Add(entry);
            int count = _aborted.Count;
            if (count > _abortedItems.Length)
            {
                var bigger = new AbortedTransaction[_abortedItems.Length * 2];
                Array.Copy(_abortedItems, bigger, count - 1);
                _abortedItems = bigger;
            }

            _abortedItems[count - 1] = entry;
            Volatile.Write(ref _abortedView, new AbortedView(_abortedItems, count, _abortedDropped));
        }
    }

    private void PublishFirstUnstable() => Volatile.Write(ref _firstUnstableOffset, FirstOngoingOffset());

    private long FirstOngoingOffset() => _ongoing.Count == 0 ? long.MaxValue : _ongoing.Min.FirstOffset;

    /// <summary>The snapshot file name for an offset.</summary>
    public static string SnapshotPath(string directory, long offset) =>
        Path.Combine(directory, LogSegment.FileName(offset, ".snapshot"));

    /// <summary>Offsets of the snapshot files in a partition directory, ascending.</summary>
    public static List<long> ListSnapshots(IFileSystem fileSystem, string directory)
    {
        var offsets = new List<long>();
        foreach (string file in fileSystem.GetFiles(directory, "*.snapshot"))
        {
            string name = Path.GetFileNameWithoutExtension(file);
            if (name.Length == 20 && long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out long offset))
            {
                offsets.Add(offset);
            }
        }

        offsets.Sort();
        return offsets;
    }

    /// <summary>
    /// Writes the state as of <paramref name="offset"/> atomically, keeping the two newest snapshots and
    /// the newest one at or below <paramref name="crashRecoveryPoint"/> (the active segment's base
    /// offset): recovery after a crash can only start from there, and once retention has removed a
    /// producer's batches no replay from the log start can rebuild its state.
    /// </summary>
    public void WriteSnapshot(IFileSystem fileSystem, string directory, long offset, long crashRecoveryPoint)
    {
        int entries = 0;
        foreach (ProducerStateEntry entry in _producers.Values)
        {
            entries += Math.Max(1, entry.BatchCount);
        }

        byte[] bytes = new byte[SnapshotHeaderSize + (entries * SnapshotEntrySize)];
        BinaryPrimitives.WriteInt16BigEndian(bytes, SnapshotVersion);
        int p = SnapshotHeaderSize;
        foreach (ProducerStateEntry entry in _producers.Values)
        {
            if (entry.BatchCount == 0)
            {
                WriteEntry(bytes.AsSpan(p), entry, -1, -1, 0, 0);
                p += SnapshotEntrySize;
            }

            for (int i = 0; i < entry.BatchCount; i++)
            {
                BatchMetadata b = entry[i];
                WriteEntry(bytes.AsSpan(p), entry, b.LastSequence, b.LastOffset, (int)(b.LastOffset - b.FirstOffset), b.Timestamp);
                p += SnapshotEntrySize;
            }
        }

        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(2), Crc32C.Compute(bytes.AsSpan(SnapshotHeaderSize)));
        AtomicFile.Write(fileSystem, SnapshotPath(directory, offset), bytes);
        List<long> all = ListSnapshots(fileSystem, directory);
        long keep = -1;
        foreach (long candidate in all)
        {
            if (candidate <= crashRecoveryPoint)
            {
                keep = candidate; // ascending: the last one found is the newest
            }
        }

        for (int i = 0; i < all.Count - 2; i++)
        {
            if (all[i] != keep)
            {
                fileSystem.DeleteFile(SnapshotPath(directory, all[i]));
            }
        }
    }

    private static void WriteEntry(Span<byte> e, ProducerStateEntry entry, int lastSequence, long lastOffset, int offsetDelta, long timestamp)
    {
        BinaryPrimitives.WriteInt64BigEndian(e, entry.ProducerId);
        BinaryPrimitives.WriteInt16BigEndian(e.Slice(8), entry.Epoch);
        BinaryPrimitives.WriteInt32BigEndian(e.Slice(10), lastSequence);
        BinaryPrimitives.WriteInt64BigEndian(e.Slice(14), lastOffset);
        BinaryPrimitives.WriteInt32BigEndian(e.Slice(22), offsetDelta);
        BinaryPrimitives.WriteInt64BigEndian(e.Slice(26), timestamp);
        BinaryPrimitives.WriteInt32BigEndian(e.Slice(34), entry.CoordinatorEpoch);
        BinaryPrimitives.WriteInt64BigEndian(e.Slice(38), entry.CurrentTransactionFirstOffset);
    }

    /// <summary>
    /// Loads a snapshot into this (empty) manager. Throws <see cref="CorruptIndexException"/> when the
    /// file's version, size or CRC is wrong; the caller then falls back to an older snapshot or a replay.
    /// </summary>
    public void LoadSnapshot(IFileSystem fileSystem, string path)
    {
        byte[] bytes = IndexFiles.ReadWhole(fileSystem, path);
        if (bytes.Length < SnapshotHeaderSize || (bytes.Length - SnapshotHeaderSize) % SnapshotEntrySize != 0)
        {
            throw new CorruptIndexException($"Producer snapshot size {bytes.Length} is invalid", path);
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(bytes);
        if (version != SnapshotVersion)
        {
            throw new CorruptIndexException($"Producer snapshot version {version} is not supported", path);
        }

        if (BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2)) != Crc32C.Compute(bytes.AsSpan(SnapshotHeaderSize)))
        {
            throw new CorruptIndexException("Producer snapshot checksum mismatch", path);
        }

        for (int p = SnapshotHeaderSize; p < bytes.Length; p += SnapshotEntrySize)
        {
            ReadOnlySpan<byte> e = bytes.AsSpan(p, SnapshotEntrySize);
            long pid = BinaryPrimitives.ReadInt64BigEndian(e);
            short epoch = BinaryPrimitives.ReadInt16BigEndian(e.Slice(8));
            int lastSequence = BinaryPrimitives.ReadInt32BigEndian(e.Slice(10));
            long lastOffset = BinaryPrimitives.ReadInt64BigEndian(e.Slice(14));
            int offsetDelta = BinaryPrimitives.ReadInt32BigEndian(e.Slice(22));
            long timestamp = BinaryPrimitives.ReadInt64BigEndian(e.Slice(26));
            int coordinatorEpoch = BinaryPrimitives.ReadInt32BigEndian(e.Slice(34));
            long txnFirst = BinaryPrimitives.ReadInt64BigEndian(e.Slice(38));
            if (!_producers.TryGetValue(pid, out ProducerStateEntry? entry))
            {
                entry = new ProducerStateEntry(pid, epoch);
                _producers.Add(pid, entry);
            }

            entry.Epoch = epoch;
            entry.CoordinatorEpoch = coordinatorEpoch;
            if (lastSequence >= 0)
            {
                // Sequences run 0..int.MaxValue and wrap, so subtract modulo 2^31.
                long first = (long)lastSequence - offsetDelta;
                int firstSequence = (int)(first < 0 ? first + int.MaxValue + 1L : first);
                entry.AddBatch(new BatchMetadata(firstSequence, lastSequence, lastOffset - offsetDelta, lastOffset, timestamp));
            }

            if (txnFirst >= 0 && entry.CurrentTransactionFirstOffset < 0)
            {
                entry.CurrentTransactionFirstOffset = txnFirst;
                _ongoing.Add((txnFirst, pid));
            }
        }

        PublishFirstUnstable();
    }
}
