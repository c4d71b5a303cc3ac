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
/// it commits. The table is rebuilt at open by replaying the partition (restated compactly when it
/// grows) and kept current by observing every batch appended to it.
/// Thread-safety: thread-safe (one lock).
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
    private readonly Dictionary<(string Group, TopicPartition Partition), int> _inFlight = new(); // plain commits not yet acknowledged

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
        groups.Restate();
        return groups;
    }

    // Rewrites the committed offsets as a fresh prefix when history dominates, dropping the rest.
    private void Restate()
    {
        PartitionLog raw = _log.Log;
        long records = raw.LogEndOffset - raw.LogStartOffset;
        ApplyVisibleUnsynchronized();
        if (records <= 2L * _committed.Count + 10_000 || _pending.Count > 0 || _held.Count > 0)
        {
            return;
        }

        raw.Roll();
        long start = raw.LogEndOffset;
        var messages = new List<Message>(_committed.Count);
        foreach (((string group, TopicPartition tp), long offset) in _committed)
        {
            messages.Add(new Message(EncodeKey(group, tp), EncodeValue(offset, _store.NowMs())));
        }

        AppendInBatches(messages);
        raw.Sync();
        raw.DeleteSegmentsBefore(start);
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
    /// the tombstones. (A commit whose record is appended after the tombstones, one racing the deletion,
    /// is newer and stays.)
    /// </summary>
    public void DeleteTopicOffsets(string topic)
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

            // Plain commits not yet acknowledged: their records may already be in the log, older than the
            // tombstones, yet take effect later (when acknowledged) and at every replay.
            foreach ((string Group, TopicPartition Partition) key in _inFlight.Keys)
            {
                if (key.Partition.Topic == topic)
                {
                    keys.Add(key);
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

        long[] recordOffsets = AppendInBatches(messages);
        _log.Log.Sync();

        // Durable: now they take effect (live, plain records are applied when acknowledged, not appended).
        lock (_lock)
        {
            for (int i = 0; i < keyList.Count; i++)
            {
                if (!_committedAt.TryGetValue(keyList[i], out long at) || recordOffsets[i] > at)
                {
                    DeleteOffset(_committed, _committedAt, keyList[i], recordOffsets[i]);
                }
            }
        }
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
    public ValueTask CommitAsync(string group, IReadOnlyCollection<TopicPartitionOffset> offsets)
    {
        if (offsets.Count == 0)
        {
            return default;
        }

        // A copy: the offsets are applied after the acknowledgement, in the order they were written.
        TopicPartitionOffset[] written = [.. offsets];
        Message[] messages = ToMessages(group, written, _store.NowMs());
        SetInFlight(group, written, +1); // before the append: DeleteTopicOffsets must see it from then on
        ValueTask<AppendResult> append;
        try
        {
            append = _log.AppendAsync(messages);
        }
        catch
        {
            SetInFlight(group, written, -1);
            throw;
        }

        if (append.IsCompletedSuccessfully)
        {
            ApplyAcknowledged(group, written, append.Result.BaseOffset);
            return default;
        }

        return ApplyWhenAcknowledgedAsync(append, group, written);
    }

    private async ValueTask ApplyWhenAcknowledgedAsync(ValueTask<AppendResult> append, string group, TopicPartitionOffset[] written)
    {
        AppendResult result;
        try
        {
            result = await append.ConfigureAwait(false);
        }
        catch
        {
            SetInFlight(group, written, -1);
            throw;
        }

        ApplyAcknowledged(group, written, result.BaseOffset);
    }

    // Like Kafka's coordinator, which updates its cache when the append succeeds: a commit is readable
    // once acknowledged, never before and never when it failed (two commits of one partition may be
    // acknowledged out of order: the newer record still wins).
    private void ApplyAcknowledged(string group, TopicPartitionOffset[] written, long baseOffset)
    {
        lock (_lock)
        {
            for (int i = 0; i < written.Length; i++)
            {
                SetIfNewer(_committed, _committedAt, (group, written[i].TopicPartition), written[i].Offset, baseOffset + i);
            }

            SetInFlightUnsynchronized(group, written, -1);
        }
    }

    private void SetInFlight(string group, TopicPartitionOffset[] written, int delta)
    {
        lock (_lock)
        {
            SetInFlightUnsynchronized(group, written, delta);
        }
    }

    // Counts the plain commits appended (or being appended) but not yet acknowledged, per key: their
    // records may precede DeleteTopicOffsets' tombstones while they take effect only after it looked.
    // (An entry is removed when its count reaches zero.)
    private void SetInFlightUnsynchronized(string group, TopicPartitionOffset[] written, int delta)
    {
        for (int i = 0; i < written.Length; i++)
        {
            (string Group, TopicPartition Partition) key = (group, written[i].TopicPartition);
            ref int count = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_inFlight, key, out _);
            count += delta;
            if (count <= 0)
            {
                _inFlight.Remove(key);
            }
        }
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
