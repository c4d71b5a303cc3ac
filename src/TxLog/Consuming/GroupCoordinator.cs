using System.Buffers.Binary;
using System.Text;
using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Consuming;

/// <summary>
/// Consumer-group offsets, kept in the internal partition <c>__consumer_offsets</c>-0:
/// <code>
/// Key   => Version int16 (= 1), GroupLength int16, Group (UTF-8), TopicLength int16, Topic (ASCII), Partition int32
/// Value => Version int16 (= 1), Offset int64, CommitTimestamp int64
/// </code>
/// Plain batches are committed offsets. Transactional batches (written by
/// <c>SendOffsetsToTransaction</c>) are held per producer until the transaction's marker: a COMMIT
/// applies them, an ABORT drops them — so offsets sent to a transaction become visible exactly when
/// it commits. The table is rebuilt at open by replaying the partition and kept current by observing
/// every batch appended to it; the partition is restated compactly when history dominates, at open
/// and from the store's background loop (<see cref="RestateIfGrown()"/>).
/// Thread-safety: thread-safe. One lock guards the tables; it is taken after the partition's append
/// lock (the observer runs under that), never before it. Restatements are serialised by a lock of their own.
/// </summary>
internal sealed class GroupCoordinator
{
    /// <summary>Name of the internal offsets topic.</summary>
    public const string TopicName = "__consumer_offsets";

    private const short Version = 1;

    private readonly LogStore _store;
    private readonly LogPartition _log;
    private readonly object _lock = new();
    private readonly Dictionary<(string Group, TopicPartition Partition), long> _committed = new();
    private readonly Dictionary<(string Group, TopicPartition Partition), long> _committedAt = new(); // log offset of the record that set it
    private readonly Dictionary<long, List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>> _pending = new();
    private readonly HashSet<PlainWrite> _inFlight = new(); // plain records in the log that have not taken effect yet

    // Offsets of committed transactions whose records are not yet visible on the offsets partition (a
    // multi-partition commit's visibility hold, or the HW in GroupCommit mode), in marker order, with the
    // offset of each one's last record. Applied once no hold and the HW no longer hide that record, so
    // they change when the transaction becomes visible, at the same instant as its other partitions.
    // (Other open transactions do not delay them: the LSO would, but their offsets are decided.)
    private readonly List<(long LastRecord, List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)> Offsets)> _held = new();

    private GroupCoordinator(LogStore store, LogPartition log)
    {
        _store = store;
        _log = log;
    }

    /// <summary>The internal partition (producers append transactional offset batches to it).</summary>
    public LogPartition Partition => _log;

    public static GroupCoordinator Open(LogStore store, RecoveryReport report)
    {
        LogPartition log = store.GetPartition(TopicName, 0);
        var groups = new GroupCoordinator(store, log);
        PartitionLog raw = log.Log;
        if (raw.LogEndOffset > raw.LogStartOffset)
        {
            raw.ForEachBatch(raw.LogStartOffset, (batch, segment) => groups.Apply(batch, replaying: true));
        }

        log.Observer = batch => groups.Apply(batch, replaying: false);
        groups.RestateIfGrown(OpenRestateSlack);
        groups.UpdateWakeThreshold();
        return groups;
    }

    // At open the log is restated once it holds this much history; the running store waits for more.
    private const long OpenRestateSlack = 10_000;

    /// <summary>
    /// History (records beyond two per committed offset) that the running store lets
    /// <c>__consumer_offsets</c> grow by before <see cref="RestateIfGrown()"/> rewrites it (tests lower it).
    /// </summary>
    internal long LiveRestateSlack
    {
        get => _liveRestateSlack;
        set
        {
            _liveRestateSlack = value;
            UpdateWakeThreshold();
        }
    }

    private long _liveRestateSlack = 100_000;

    // The log size (records) at which an append asks the store's background loop for a restatement
    // pass at once instead of at its next timed pass: twice the restatement threshold, or twice the
    // size a pass could not shrink (a pending transaction keeps history), so a busy process cannot
    // grow the log without bound between timed passes, and a log that cannot shrink yet asks only at
    // each doubling.
    private long _wakeAt = long.MaxValue;

    private void UpdateWakeThreshold()
    {
        int live;
        lock (_lock)
        {
            live = _committed.Count;
        }

        PartitionLog raw = _log.Log;
        long size = raw.LogEndOffset - raw.LogStartOffset;
        Volatile.Write(ref _wakeAt, 2 * Math.Max(size, (2L * live) + _liveRestateSlack));
    }

    // After an append: wakes the background loop when the log has grown past the wake threshold.
    private void WakeIfGrown()
    {
        PartitionLog raw = _log.Log;
        if (raw.LogEndOffset - raw.LogStartOffset >= Volatile.Read(ref _wakeAt))
        {
            _store.WakeBackground();
        }
    }

    /// <summary>Restatements that deleted history (at open and live).</summary>
    internal int Restatements => Volatile.Read(ref _restatements);

    /// <summary>Live restatements that failed (logged; the next pass of the store's timer tries again).</summary>
    internal int RestateFailures => Volatile.Read(ref _restateFailures);

    /// <summary>Tests only: called at named steps of a restatement ("planned": the copies are decided, nothing written yet).</summary>
    internal Action<string>? StepHook { get; set; }

    private readonly object _restateLock = new();
    private int _restatements;
    private int _restateFailures;

    /// <summary>
    /// Called by the store's background loop: <see cref="RestateIfGrown()"/>, never throwing. A failure
    /// (a failed write or fsync, which also stops the partition) is logged and counted; since nothing is
    /// deleted before the copies are durable, it costs nothing but the retry.
    /// </summary>
    internal void RestateFromTimer()
    {
        try
        {
            RestateIfGrown();
        }
        catch (ObjectDisposedException)
        {
            // The store is closing.
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _restateFailures);
            try
            {
                Diagnostics.LogMessages.OffsetsRestateFailed(_store.Telemetry.Logger, e);
            }
            catch (Exception)
            {
                // A logger that throws must not end the background loop (Periodic fsyncs, retention).
            }
        }
    }

    /// <summary>
    /// While the store runs: when <c>__consumer_offsets</c> holds more than twice the committed offsets
    /// plus <see cref="LiveRestateSlack"/> records, writes the current state again at its end and deletes
    /// the segments before it (see <see cref="PlanRestatementUnsynchronized"/> for what may go). Returns
    /// true when it deleted history. Commits go on meanwhile; only appends to this partition wait while
    /// the copies are written.
    /// </summary>
    internal bool RestateIfGrown()
    {
        try
        {
            return RestateIfGrown(LiveRestateSlack);
        }
        finally
        {
            UpdateWakeThreshold();
        }
    }

    // Rolls when the whole log may go, writes the copies with no other record between them and the point
    // they were computed at (the partition's append lock is held, so the copies are exactly what a replay
    // of the log before them gives), makes them durable, then deletes the segments before keepFrom. A
    // power cut before the deletion leaves old records and copies (replay: the same state); after it,
    // only what is kept and the copies.
    private bool RestateIfGrown(long slack)
    {
        lock (_restateLock)
        {
            PartitionLog raw = _log.Log;
            int live;
            lock (_lock)
            {
                live = _committed.Count;
            }

            if (raw.LogEndOffset - raw.LogStartOffset <= 2L * live + slack)
            {
                return false;
            }

            long keepFrom;
            lock (_log.AppendLock)
            {
                List<(Message Copy, (string Group, TopicPartition Partition) Key, long At)>? copies;
                lock (_lock)
                {
                    copies = PlanRestatementUnsynchronized(slack, out keepFrom);
                }

                if (copies is null)
                {
                    return false;
                }

                StepHook?.Invoke("planned");

                if (keepFrom == raw.LogEndOffset)
                {
                    _log.Roll();
                }

                var messages = new List<Message>(copies.Count);
                foreach (var c in copies)
                {
                    messages.Add(c.Copy);
                }

                long[] written = AppendInBatches(messages);
                lock (_lock)
                {
                    // A key whose offset in effect is the very record its copy repeats now lives at the copy
                    // (the next restatement sees where it is). Keys waiting for a commit to be acknowledged,
                    // or for a held transaction, keep the position they have: what takes effect decides.
                    for (int i = 0; i < copies.Count; i++)
                    {
                        if (_committedAt.TryGetValue(copies[i].Key, out long at) && at == copies[i].At)
                        {
                            _committedAt[copies[i].Key] = written[i];
                        }
                    }
                }
            }

            raw.Sync();
            raw.DeleteSegmentsBefore(keepFrom);
            Interlocked.Increment(ref _restatements);
            return true;
        }
    }

    /// <summary>
    /// Decides, under the partition's append lock and <see cref="_lock"/>, what a restatement keeps and
    /// rewrites; null when it would not drop more than twice the committed offsets plus
    /// <paramref name="slack"/> records.
    /// </summary>
    /// <remarks>
    /// The rule. Replay keeps, per key, the newest record among plain ones (commits, tombstones, copies)
    /// and those of committed transactions; a transaction's records wait for its marker. A restatement
    /// writes at the log end, for every key, a copy of what that replay gives for the log before it, and
    /// deletes whole segments before <c>keepFrom</c>. That is exact except for records of transactions
    /// not decided yet (offsets sent to a transaction, pending until its marker):
    /// <list type="bullet">
    /// <item>such a record must not be deleted (its transaction may still commit): keepFrom is at or below
    /// the first of them;</item>
    /// <item>a key with such a record gets no copy: a copy written after the record would be newer than it
    /// and win over it when the transaction commits (an aborted one's never counts, committed or not).
    /// So the record its value comes from stays too: keepFrom is also at or below it. Whatever the
    /// transaction's outcome, replay then decides that key from the same records as before.</item>
    /// </list>
    /// What is in effect is not all that is in the log: plain commits not yet acknowledged, tombstones not
    /// yet durable and committed transactions still hidden (held) count at replay. They are in
    /// <see cref="_inFlight"/> (with their offsets: plain writes register under the append lock) and
    /// <see cref="_held"/>, and the copies take them in; the copy repeats what is already in the log
    /// before it, so it makes nothing visible early. A key whose newest record is a tombstone gets no copy
    /// (a deleted topic's offsets stay deleted; an older record of a transaction not yet decided keeps
    /// everything from it, tombstone included). Keys with records at or after keepFrom need no copy.
    /// </remarks>
    private List<(Message Copy, (string Group, TopicPartition Partition) Key, long At)>? PlanRestatementUnsynchronized(long slack, out long keepFrom)
    {
        ApplyVisibleUnsynchronized();
        PartitionLog raw = _log.Log;
        long start = raw.LogStartOffset;
        long end = raw.LogEndOffset;
        long allowed = 2L * _committed.Count + slack;
        long keep = end;
        foreach (var offsets in _pending.Values)
        {
            foreach (var pending in offsets)
            {
                keep = Math.Min(keep, pending.RecordOffset);
            }
        }

        keepFrom = SegmentStart(raw, keep);
        if (keepFrom - start <= allowed)
        {
            return null;
        }

        // A key with a pending record keeps the record its current offset comes from (see below). There
        // are few such keys: find their records first, so a pass that could not delete enough gives up
        // before building the whole state under the append lock (every pass while such a transaction is
        // open, each FlushInterval in Periodic mode).
        foreach (var offsets in _pending.Values)
        {
            foreach ((var key, long _, long _) in offsets)
            {
                if (CurrentRecordUnsynchronized(key) is long at)
                {
                    keep = Math.Min(keep, at);
                }
            }
        }

        keepFrom = SegmentStart(raw, keep);
        if (keepFrom - start <= allowed)
        {
            return null;
        }

        FullPlansBuilt++;

        // What a replay of the log gives: the offsets in effect, then what takes effect later.
        var state = new Dictionary<(string Group, TopicPartition Partition), (long Offset, long At)>(_committedAt.Count);
        foreach (((string Group, TopicPartition Partition) key, long at) in _committedAt)
        {
            state[key] = (_committed.TryGetValue(key, out long offset) ? offset : -1, at);
        }

        foreach (var (_, offsets) in _held)
        {
            foreach ((var key, long offset, long recordOffset) in offsets)
            {
                SetIfNewer(state, key, offset, recordOffset);
            }
        }

        foreach (PlainWrite write in _inFlight)
        {
            for (int i = 0; i < write.Count; i++)
            {
                SetIfNewer(state, write.KeyAt(i), write.OffsetAt(i), write.BaseOffset + i);
            }
        }

        foreach (var offsets in _pending.Values)
        {
            foreach ((var key, long _, long _) in offsets)
            {
                if (state.TryGetValue(key, out var current) && current.Offset >= 0)
                {
                    keep = Math.Min(keep, current.At);
                }
            }
        }

        keepFrom = SegmentStart(raw, keep);
        if (keepFrom - start <= allowed)
        {
            return null;
        }

        var copies = new List<(Message, (string, TopicPartition), long)>(state.Count);
        long now = _store.NowMs();
        foreach (((string group, TopicPartition tp) key, (long offset, long at)) in state)
        {
            if (offset >= 0 && at < keepFrom)
            {
                copies.Add((new Message(EncodeKey(key.group, key.tp), EncodeValue(offset, now)), key, at));
            }
        }

        return copies;
    }

    // The first offset of the segment holding `offset`, or the log end when offset is the log end (the
    // restatement rolls then, and every segment before it may go).
    private static long SegmentStart(PartitionLog raw, long offset)
    {
        if (offset >= raw.LogEndOffset)
        {
            return raw.LogEndOffset;
        }

        LogSegment[] segments = raw.Segments;
        for (int i = segments.Length - 1; i > 0; i--)
        {
            if (segments[i].BaseOffset <= offset)
            {
                return segments[i].BaseOffset;
            }
        }

        return segments[0].BaseOffset;
    }

    /// <summary>Restatement plans that built the whole state (for tests: a pass that cannot delete enough should not).</summary>
    internal int FullPlansBuilt { get; private set; }

    // The record a replay would take `key`'s offset from (the same rule as the state built in
    // PlanRestatementUnsynchronized, for one key), or null when the key has no offset (or a tombstone).
    private long? CurrentRecordUnsynchronized((string Group, TopicPartition Partition) key)
    {
        long offset = -1, at = -1;
        if (_committedAt.TryGetValue(key, out long committedAt))
        {
            offset = _committed.TryGetValue(key, out long committed) ? committed : -1;
            at = committedAt;
        }

        foreach (var (_, offsets) in _held)
        {
            foreach ((var k, long o, long recordOffset) in offsets)
            {
                if (k == key && recordOffset > at)
                {
                    (offset, at) = (o, recordOffset);
                }
            }
        }

        foreach (PlainWrite write in _inFlight)
        {
            for (int i = 0; i < write.Count; i++)
            {
                if (write.KeyAt(i) == key && write.BaseOffset + i > at)
                {
                    (offset, at) = (write.OffsetAt(i), write.BaseOffset + i);
                }
            }
        }

        return offset >= 0 ? at : null;
    }

    // Replay's rule for one record (offset -1: a tombstone): the newer record wins.
    private static void SetIfNewer(Dictionary<(string Group, TopicPartition Partition), (long Offset, long At)> state,
        (string Group, TopicPartition Partition) key, long offset, long recordOffset)
    {
        if (!state.TryGetValue(key, out var current) || recordOffset > current.At)
        {
            state[key] = (offset, recordOffset);
        }
    }

    /// <summary>
    /// Applies one batch of the offsets partition (replay and live). Live, a plain batch is skipped: its
    /// offsets take effect when <see cref="CommitAsync"/> is acknowledged (the restatement's batches
    /// only repeat what is in effect already).
    /// </summary>
    private void Apply(RecordBatch batch, bool replaying)
    {
        if (!replaying && !batch.IsControl && !batch.IsTransactional)
        {
            return;
        }

        lock (_lock)
        {
            if (batch.IsControl)
            {
                // A COMMIT does not apply the transaction's offsets yet: they take effect when its records
                // become visible (see _held), not while a visibility hold still hides the transaction.
                if (TakeCommitted(batch, _pending) is { Count: > 0 } waiting)
                {
                    _held.Add((waiting[^1].RecordOffset, waiting));
                }
            }
            else
            {
                ApplyBatch(batch, _committed, _committedAt, _pending);
            }

            ApplyVisibleUnsynchronized();
        }

        if (!replaying)
        {
            WakeIfGrown();
        }
    }

    // Applies the held offsets whose records are now visible (a hold of a transaction is added before its
    // COMMIT marker, so a held transaction is held from the moment it arrives here). Caller holds _lock.
    private void ApplyVisibleUnsynchronized()
    {
        if (_held.Count == 0)
        {
            return;
        }

        long visibleEnd = _log.CommittedVisibleEnd;
        int kept = 0;
        for (int i = 0; i < _held.Count; i++)
        {
            if (_held[i].LastRecord < visibleEnd)
            {
                ApplyCommitted(_held[i].Offsets, _committed, _committedAt);
            }
            else
            {
                _held[kept++] = _held[i];
            }
        }

        _held.RemoveRange(kept, _held.Count - kept);
    }

    private static void ApplyCommitted(List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)> waiting,
        Dictionary<(string Group, TopicPartition Partition), long> committed,
        Dictionary<(string Group, TopicPartition Partition), long> committedAt)
    {
        foreach ((var key, long offset, long recordOffset) in waiting)
        {
            SetIfNewer(committed, committedAt, key, offset, recordOffset);
        }
    }

    // Kafka's rule: the newest record in the offsets log wins, whatever order offsets take effect in.
    private static void SetIfNewer(Dictionary<(string Group, TopicPartition Partition), long> committed,
        Dictionary<(string Group, TopicPartition Partition), long> committedAt,
        (string Group, TopicPartition Partition) key, long offset, long recordOffset)
    {
        if (!committedAt.TryGetValue(key, out long at) || recordOffset > at)
        {
            committed[key] = offset;
            committedAt[key] = recordOffset;
        }
    }

    // A marker ends the producer's pending offsets: returns them for a COMMIT, drops them for an ABORT.
    private static List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>? TakeCommitted(RecordBatch batch,
        Dictionary<long, List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>> pending)
    {
        List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>? committed = null;
        foreach (Record record in batch)
        {
            if (pending.Remove(batch.ProducerId, out var waiting) && ControlRecord.ReadType(record.Key) == ControlRecordType.Commit)
            {
                committed = waiting;
            }
        }

        return committed;
    }

    /// <summary>
    /// The replay rule, shared with the read-only inspector: plain records count at once; records of a
    /// transaction wait in <paramref name="pending"/> (by producer id) for its COMMIT marker and are
    /// dropped at its ABORT. At the COMMIT, a transactional offset is applied only if no later record
    /// (a plain commit written after it) already set that group's offset — Kafka's rule: the newest
    /// write in the offsets log wins (<paramref name="committedAt"/> holds each offset's record position).
    /// </summary>
    internal static void ApplyBatch(RecordBatch batch, Dictionary<(string Group, TopicPartition Partition), long> committed,
        Dictionary<(string Group, TopicPartition Partition), long> committedAt,
        Dictionary<long, List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>> pending)
    {
        if (batch.IsControl)
        {
            if (TakeCommitted(batch, pending) is { } waiting)
            {
                ApplyCommitted(waiting, committed, committedAt);
            }

            return;
        }

        foreach (Record record in batch)
        {
            if (!record.HasKey)
            {
                continue;
            }

            if (!record.HasValue)
            {
                // A tombstone (DeleteTopic): the group has no committed offset there any more, and an older
                // transactional offset committed later does not bring it back (newest write wins).
                if (!batch.IsTransactional)
                {
                    DeleteOffset(committed, committedAt, DecodeKey(record.Key), record.Offset);
                }

                continue;
            }

            (string group, TopicPartition tp) = DecodeKey(record.Key);
            long offset = DecodeValue(record.Value);
            if (batch.IsTransactional)
            {
                if (!pending.TryGetValue(batch.ProducerId, out var list))
                {
                    list = new();
                    pending.Add(batch.ProducerId, list);
                }

                list.Add(((group, tp), offset, record.Offset));
            }
            else
            {
                committed[(group, tp)] = offset;
                committedAt[(group, tp)] = record.Offset;
            }
        }
    }

    /// <summary>
    /// True while an offset of the group on the partition is written but has not taken effect or been
    /// dropped yet: sent to a transaction that has not ended (or whose commit is not visible yet), or a
    /// plain commit not yet acknowledged. A consumer taking the partition over waits for it, so it starts
    /// where that outcome leaves the group (Kafka's stable offsets).
    /// </summary>
    public bool HasUnsettledOffset(string group, TopicPartition partition)
    {
        var key = (group, partition);
        lock (_lock)
        {
            ApplyVisibleUnsynchronized();
            foreach (var offsets in _pending.Values)
            {
                if (Contains(offsets, key))
                {
                    return true;
                }
            }

            foreach (var held in _held)
            {
                if (Contains(held.Offsets, key))
                {
                    return true;
                }
            }

            foreach (PlainWrite write in _inFlight)
            {
                for (int i = 0; i < write.Count; i++)
                {
                    if (write.KeyAt(i) == key)
                    {
                        return true;
                    }
                }
            }

            return false;
        }

        static bool Contains(List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)> offsets, (string, TopicPartition) key)
        {
            foreach (var o in offsets)
            {
                if (o.Key == key)
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>The committed offset (the next offset to consume) of a group on a partition, or null.</summary>
    public long? Committed(string group, TopicPartition partition)
    {
        lock (_lock)
        {
            ApplyVisibleUnsynchronized();
            return _committed.TryGetValue((group, partition), out long offset) ? offset : null;
        }
    }

    /// <summary>All committed offsets of a group.</summary>
    public Dictionary<TopicPartition, long> CommittedOffsets(string group)
    {
        var result = new Dictionary<TopicPartition, long>();
        lock (_lock)
        {
            ApplyVisibleUnsynchronized();
            foreach (((string g, TopicPartition tp), long offset) in _committed)
            {
                if (g == group)
                {
                    result[tp] = offset;
                }
            }
        }

        return result;
    }

    /// <summary>Every committed offset of every group (a copy).</summary>
    public List<(string Group, TopicPartition Partition, long Offset)> AllCommitted()
    {
        lock (_lock)
        {
            ApplyVisibleUnsynchronized();
            var all = new List<(string, TopicPartition, long)>(_committed.Count);
            foreach (((string g, TopicPartition tp), long offset) in _committed)
            {
                all.Add((g, tp, offset));
            }

            return all;
        }
    }

    /// <summary>The groups with committed offsets.</summary>
    public List<string> Groups()
    {
        var set = new SortedSet<string>(StringComparer.Ordinal);
        lock (_lock)
        {
            ApplyVisibleUnsynchronized();
            foreach ((string g, TopicPartition _) in _committed.Keys)
            {
                set.Add(g);
            }
        }

        return new List<string>(set);
    }

    /// <summary>
    /// Deletes every group's committed offsets on the partitions of <paramref name="topic"/> (a deleted
    /// topic: a topic created again under its name starts with no committed offsets, as in Kafka), with
    /// tombstones (records without a value) made durable before returning. Offsets of transactions not
    /// yet applied, and plain commits not yet acknowledged, are covered too: their records are older than
    /// the tombstones (the keys are collected under the append lock, and the tombstones follow at once).
    /// (A commit whose record is appended after the tombstones, one racing the deletion, is newer and stays.)
    /// </summary>
    public void DeleteTopicOffsets(string topic)
    {
        PlainWrite tombstones;
        lock (_log.AppendLock)
        {
            var keys = new HashSet<(string Group, TopicPartition Partition)>();
            lock (_lock)
            {
                ApplyVisibleUnsynchronized();
                foreach ((string Group, TopicPartition Partition) key in _committed.Keys)
                {
                    if (key.Partition.Topic == topic)
                    {
                        keys.Add(key);
                    }
                }

                foreach (var (_, offsets) in _held)
                {
                    AddKeysOf(offsets, topic, keys);
                }

                foreach (var offsets in _pending.Values)
                {
                    AddKeysOf(offsets, topic, keys);
                }

                // Plain commits not yet acknowledged: their records are already in the log, older than the
                // tombstones, yet take effect later (when acknowledged) and at every replay.
                foreach (PlainWrite write in _inFlight)
                {
                    for (int i = 0; i < write.Count; i++)
                    {
                        if (write.KeyAt(i).Partition.Topic == topic)
                        {
                            keys.Add(write.KeyAt(i));
                        }
                    }
                }
            }

            if (keys.Count == 0)
            {
                return;
            }

            var keyList = new List<(string Group, TopicPartition Partition)>(keys);
            var messages = new List<Message>(keyList.Count);
            foreach ((string group, TopicPartition tp) in keyList)
            {
                messages.Add(new Message(EncodeKey(group, tp), null));
            }

            // Consecutive offsets: nothing else is appended while the append lock is held.
            long first = AppendInBatches(messages)[0];
            tombstones = new PlainWrite(keyList, first);
            lock (_lock)
            {
                _inFlight.Add(tombstones); // a restatement must take them in before they take effect
            }
        }

        try
        {
            _log.Log.Sync();
        }
        catch
        {
            Forget(tombstones);
            throw;
        }

        // Durable: now they take effect (live, plain records are applied when acknowledged, not appended).
        lock (_lock)
        {
            for (int i = 0; i < tombstones.Count; i++)
            {
                if (!_committedAt.TryGetValue(tombstones.KeyAt(i), out long at) || tombstones.BaseOffset + i > at)
                {
                    DeleteOffset(_committed, _committedAt, tombstones.KeyAt(i), tombstones.BaseOffset + i);
                }
            }

            _inFlight.Remove(tombstones);
        }

        Settled();
    }

    // Appends the records in as many batches as it takes (one batch of all could exceed MaxBatchBytes,
    // and then every open would fail; half the limit leaves room for the per-record framing). Returns
    // each record's offset.
    private long[] AppendInBatches(List<Message> messages)
    {
        int budget = Math.Max(1, _log.Log.Config.MaxBatchBytes / 2);
        var offsets = new long[messages.Count];
        int first = 0;
        int bytes = 0;
        for (int i = 0; i <= messages.Count; i++)
        {
            int size = i < messages.Count ? (messages[i].Key?.Length ?? 0) + (messages[i].Value?.Length ?? 0) + 32 : 0;
            if (i == messages.Count || (i > first && bytes + size > budget))
            {
                if (i > first)
                {
                    long baseOffset = _log.Append(messages.GetRange(first, i - first).ToArray()).BaseOffset;
                    for (int j = first; j < i; j++)
                    {
                        offsets[j] = baseOffset + (j - first);
                    }
                }

                first = i;
                bytes = 0;
            }

            bytes += size;
        }

        return offsets;
    }

    // A tombstone's effect: no committed offset for the key, and the record position that decided it.
    private static void DeleteOffset(Dictionary<(string Group, TopicPartition Partition), long> committed,
        Dictionary<(string Group, TopicPartition Partition), long> committedAt, (string Group, TopicPartition Partition) key, long recordOffset)
    {
        committed.Remove(key);
        committedAt[key] = recordOffset;
    }

    private static void AddKeysOf(List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)> offsets, string topic,
        HashSet<(string Group, TopicPartition Partition)> keys)
    {
        foreach (((string Group, TopicPartition Partition) key, long _, long _) in offsets)
        {
            if (key.Partition.Topic == topic)
            {
                keys.Add(key);
            }
        }
    }

    /// <summary>Commits offsets outside any transaction; completes as the durability mode acknowledges.</summary>
    public ValueTask CommitAsync(string group, IReadOnlyCollection<TopicPartitionOffset> offsets, IReadOnlyList<LogPartition>? read = null) =>
        AcknowledgeAsync(AppendCommit(group, offsets, read));

    /// <summary>
    /// The first offset of a partition in <paramref name="read"/> (the partitions the committer read)
    /// whose topic <see cref="LogStore.DeleteTopic"/> has retired, or null. Call it under the offsets
    /// partition's append lock, which the deletion's tombstones take after the topic is retired: either
    /// the offsets are written before the tombstones (which then delete them), or the retirement is seen
    /// here. Written after the tombstones they would outlive them and start a topic created again under
    /// the name past its first records.
    /// </summary>
    internal static TopicPartition? FindRetired(IReadOnlyCollection<TopicPartitionOffset> offsets, IReadOnlyList<LogPartition>? read)
    {
        if (read is null)
        {
            return null;
        }

        foreach (LogPartition p in read)
        {
            if (!p.Retired)
            {
                continue;
            }

            foreach (TopicPartitionOffset o in offsets)
            {
                if (o.TopicPartition == p.Log.Id)
                {
                    return o.TopicPartition;
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The first step of <see cref="CommitAsync"/>: appends the commit and registers it as not yet in
    /// effect (so <see cref="HasUnsettledOffset"/> sees it from now on); null when there are no offsets.
    /// Never waits for durability: a group member runs it under the membership lock, then
    /// <see cref="AcknowledgeAsync"/> outside it.
    /// </summary>
    /// <exception cref="TopicNotFoundException">An offset is of a partition in <paramref name="read"/> whose topic is being or was deleted (see <see cref="FindRetired"/>).</exception>
    internal PlainCommit? AppendCommit(string group, IReadOnlyCollection<TopicPartitionOffset> offsets, IReadOnlyList<LogPartition>? read = null)
    {
        if (offsets.Count == 0)
        {
            return null;
        }

        // A copy: the offsets are applied after the acknowledgement, in the order they were written.
        TopicPartitionOffset[] written = [.. offsets];
        Message[] messages = ToMessages(group, written, _store.NowMs());
        PlainCommit commit;
        lock (_log.AppendLock)
        {
            if (FindRetired(offsets, read) is { } retired)
            {
                throw new TopicNotFoundException(retired.Topic);
            }

            // Appended and registered in one step: whoever holds the append lock (DeleteTopicOffsets, a
            // restatement) finds every plain record of the log either in effect or in _inFlight.
            AppendResult appended = _log.Append(messages);
            var write = new PlainWrite(group, written, appended.BaseOffset);
            lock (_lock)
            {
                _inFlight.Add(write);
            }

            commit = new PlainCommit(write, appended);
        }

        WakeIfGrown();
        return commit;
    }

    /// <summary>The second step of <see cref="CommitAsync"/>: waits as the durability mode says, then applies the commit (or forgets it when that failed).</summary>
    internal ValueTask AcknowledgeAsync(PlainCommit? commit)
    {
        if (commit is not { } c)
        {
            return default;
        }

        ValueTask<AppendResult> acknowledged;
        try
        {
            acknowledged = _log.WaitAsDurabilityModeSays(c.Appended);
        }
        catch
        {
            Forget(c.Write);
            throw;
        }

        if (acknowledged.IsCompletedSuccessfully)
        {
            ApplyAcknowledged(c.Write);
            return default;
        }

        return ApplyWhenAcknowledgedAsync(acknowledged, c.Write);
    }

    /// <summary>A plain commit appended and registered, not yet acknowledged (see <see cref="AppendCommit"/>).</summary>
    internal readonly record struct PlainCommit(PlainWrite Write, AppendResult Appended);

    private async ValueTask ApplyWhenAcknowledgedAsync(ValueTask<AppendResult> acknowledged, PlainWrite write)
    {
        try
        {
            await acknowledged.ConfigureAwait(false);
        }
        catch
        {
            Forget(write);
            throw;
        }

        ApplyAcknowledged(write);
    }

    // Like Kafka's coordinator, which updates its cache when the append succeeds: a commit is readable
    // once acknowledged, never before and never when it failed (two commits of one partition may be
    // acknowledged out of order: the newer record still wins).
    private void ApplyAcknowledged(PlainWrite write)
    {
        lock (_lock)
        {
            for (int i = 0; i < write.Count; i++)
            {
                SetIfNewer(_committed, _committedAt, write.KeyAt(i), write.OffsetAt(i), write.BaseOffset + i);
            }

            _inFlight.Remove(write);
        }

        Settled();
    }

    // A plain write that failed never takes effect live (its records, if they reached the disk, count at
    // the next replay, as before).
    private void Forget(PlainWrite write)
    {
        lock (_lock)
        {
            _inFlight.Remove(write);
        }

        Settled();
    }

    // A plain write left _inFlight: a group member waiting to take one of its partitions (see
    // HasUnsettledOffset) waits on this partition's signal, and the HW pulse that acknowledged the write
    // came before this change.
    private void Settled() => _log.Signal.Pulse();

    /// <summary>
    /// Plain records appended to the offsets partition that have not taken effect yet: a commit until it
    /// is acknowledged, DeleteTopicOffsets' tombstones until they are durable. Created under the
    /// partition's append lock with the offset of its first record (the records are consecutive).
    /// </summary>
    internal sealed class PlainWrite
    {
        private readonly string? _group;
        private readonly TopicPartitionOffset[]? _offsets;
        private readonly List<(string Group, TopicPartition Partition)>? _tombstones;

        public PlainWrite(string group, TopicPartitionOffset[] offsets, long baseOffset)
        {
            _group = group;
            _offsets = offsets;
            BaseOffset = baseOffset;
        }

        public PlainWrite(List<(string Group, TopicPartition Partition)> tombstones, long baseOffset)
        {
            _tombstones = tombstones;
            BaseOffset = baseOffset;
        }

        public long BaseOffset { get; }

        public int Count => _offsets?.Length ?? _tombstones!.Count;

        public (string Group, TopicPartition Partition) KeyAt(int i) => _offsets is { } o ? (_group!, o[i].TopicPartition) : _tombstones![i];

        /// <summary>The committed offset the i-th record sets, or -1 for a tombstone.</summary>
        public long OffsetAt(int i) => _offsets is { } o ? o[i].Offset : -1;
    }

    /// <summary>Encodes offsets as records of the offsets partition.</summary>
    public static Message[] ToMessages(string group, IReadOnlyCollection<TopicPartitionOffset> offsets, long now)
    {
        ValidateGroup(group);
        var messages = new Message[offsets.Count];
        int i = 0;
        foreach (TopicPartitionOffset o in offsets)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(o.Offset, nameof(offsets));
            Storage.TopicName.Validate(o.TopicPartition.Topic, nameof(offsets)); // the key holds it as ASCII with an int16 length
            ArgumentOutOfRangeException.ThrowIfNegative(o.TopicPartition.Partition, nameof(offsets));
            messages[i++] = new Message(EncodeKey(group, o.TopicPartition), EncodeValue(o.Offset, now));
        }

        return messages;
    }

    // Strict: a group id that is not valid UTF-16 (a lone surrogate) would be written as U+FFFD and read
    // back as another group.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless the group id fits the key format: valid UTF-16 and
    /// at most <see cref="short.MaxValue"/> bytes of UTF-8 (the key's int16 length). A key written past
    /// these limits would not decode, and the replay at the next open would fail on it.
    /// </summary>
    public static void ValidateGroup(string group)
    {
        ArgumentNullException.ThrowIfNull(group);
        int length;
        try
        {
            length = StrictUtf8.GetByteCount(group);
        }
        catch (EncoderFallbackException e)
        {
            throw new ArgumentException("The group id is not valid UTF-16 (it has a lone surrogate).", nameof(group), e);
        }

        if (length > short.MaxValue)
        {
            throw new ArgumentException($"The group id is {length} bytes of UTF-8; at most {short.MaxValue} are allowed.", nameof(group));
        }
    }

    private static byte[] EncodeKey(string group, TopicPartition tp)
    {
        int groupLength = StrictUtf8.GetByteCount(group);
        byte[] key = new byte[2 + 2 + groupLength + 2 + tp.Topic.Length + 4];
        Span<byte> s = key;
        BinaryPrimitives.WriteInt16BigEndian(s, Version);
        BinaryPrimitives.WriteInt16BigEndian(s.Slice(2), (short)groupLength);
        StrictUtf8.GetBytes(group, s.Slice(4));
        int p = 4 + groupLength;
        BinaryPrimitives.WriteInt16BigEndian(s.Slice(p), (short)tp.Topic.Length);
        Encoding.ASCII.GetBytes(tp.Topic, s.Slice(p + 2));
        BinaryPrimitives.WriteInt32BigEndian(s.Slice(p + 2 + tp.Topic.Length), tp.Partition);
        return key;
    }

    private static byte[] EncodeValue(long offset, long now)
    {
        byte[] value = new byte[18];
        BinaryPrimitives.WriteInt16BigEndian(value, Version);
        BinaryPrimitives.WriteInt64BigEndian(value.AsSpan(2), offset);
        BinaryPrimitives.WriteInt64BigEndian(value.AsSpan(10), now);
        return value;
    }

    /// <summary>Decodes a key (version 1: group, topic, partition); <see cref="CorruptRecordException"/> when malformed.</summary>
    internal static (string Group, TopicPartition Partition) DecodeKey(ReadOnlySpan<byte> key)
    {
        try
        {
            if (BinaryPrimitives.ReadInt16BigEndian(key) != Version)
            {
                throw new CorruptRecordException("Unknown consumer offset key version.");
            }

            int groupLength = BinaryPrimitives.ReadInt16BigEndian(key.Slice(2));
            string group = Encoding.UTF8.GetString(key.Slice(4, groupLength));
            int p = 4 + groupLength;
            int topicLength = BinaryPrimitives.ReadInt16BigEndian(key.Slice(p));
            string topic = Encoding.ASCII.GetString(key.Slice(p + 2, topicLength));
            int partition = BinaryPrimitives.ReadInt32BigEndian(key.Slice(p + 2 + topicLength));
            return (group, new TopicPartition(topic, partition));
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new CorruptRecordException("Truncated consumer offset key.");
        }
    }

    /// <summary>Decodes a value (version 1: offset, commit time); <see cref="CorruptRecordException"/> when malformed.</summary>
    internal static long DecodeValue(ReadOnlySpan<byte> value)
    {
        if (value.Length < 10 || BinaryPrimitives.ReadInt16BigEndian(value) != Version)
        {
            throw new CorruptRecordException("Malformed consumer offset value.");
        }

        return BinaryPrimitives.ReadInt64BigEndian(value.Slice(2));
    }
}
