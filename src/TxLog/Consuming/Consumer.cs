using System.Runtime.CompilerServices;
using TxLog.Diagnostics;
using TxLog.Records;

namespace TxLog.Consuming;

/// <summary>
/// Where a consumer starts on a partition with no committed offset, or with one out of range (below the
/// log start or past the log end), and where it continues when retention deletes the records at its
/// position before it has read them (its position falls below the log start), as Kafka's
/// <c>auto.offset.reset</c>.
/// </summary>
public enum AutoOffsetReset
{
    /// <summary>At the log start offset: only records retention deleted are skipped.</summary>
    Earliest,

    /// <summary>At the end for the consumer's isolation level (the HW, or the LSO for read-committed).</summary>
    Latest,

    /// <summary>Throw <see cref="OffsetOutOfRangeException"/> (from <see cref="Consumer.Assign"/> without a usable committed offset, from <see cref="Consumer.Consume"/> and <see cref="Consumer.ConsumeAsync"/> for a position); nothing is skipped.</summary>
    Error,
}

/// <summary>Settings of a <see cref="Consumer"/>.</summary>
public sealed class ConsumerOptions
{
    /// <summary>The consumer group whose committed offsets the consumer starts from and commits to; null for none.</summary>
    public string? GroupId { get; set; }

    /// <summary>
    /// What the consumer sees of transactions. Default <see cref="IsolationLevel.ReadCommitted"/>
    /// (Kafka's default is read_uncommitted; a transactional log is read committed by default here).
    /// </summary>
    public IsolationLevel Isolation { get; set; } = IsolationLevel.ReadCommitted;

    /// <summary>Start position without a committed offset or with one out of range, and the new position when retention deletes records the consumer has not read yet. Default <see cref="AutoOffsetReset.Earliest"/>.</summary>
    public AutoOffsetReset AutoOffsetReset { get; set; } = AutoOffsetReset.Earliest;

    /// <summary>
    /// Called (on the consumer's own flow, inside the poll that notices the change) with partitions a
    /// subscribed consumer is about to give up because its group was rebalanced, or when it unsubscribes
    /// or is disposed. The consumer still owns them here: commit their offsets now (as Kafka's
    /// <c>onPartitionsRevoked</c>). If it throws, the partitions are still given up and the exception
    /// propagates from the poll. Inside this callback and <see cref="PartitionsAssigned"/> the consumer
    /// may commit, seek, unsubscribe or be disposed; polling, subscribing or assigning throws
    /// <see cref="InvalidOperationException"/>.
    /// </summary>
    public Action<Consumer, IReadOnlyList<TopicPartition>>? PartitionsRevoked { get; set; }

    /// <summary>
    /// The longest a subscribed consumer may go without polling (<see cref="Consumer.Consume"/>, or its
    /// <see cref="Consumer.ConsumeAsync"/> loop asking for the next record; a loop waiting for data is
    /// polling) before its group evicts it and the other members take its partitions, as Kafka's
    /// <c>max.poll.interval.ms</c> (event 7002). The evicted consumer's commits of them fail with
    /// <see cref="CommitFailedException"/>; at its next poll it drops its partitions (without
    /// <see cref="PartitionsRevoked"/>) and joins again. Default 5 minutes; <see cref="Timeout.InfiniteTimeSpan"/>
    /// never evicts. Checked at other members' polls (at most once a second) and at each pass of the
    /// store's background loop. Measured on the monotonic clock of <see cref="LogStoreOptions.TimeProvider"/>
    /// (<see cref="TimeProvider.GetTimestamp"/>), so a step of the wall clock neither evicts nor spares anyone.
    /// </summary>
    public TimeSpan MaxPollInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Called (on the consumer's own flow, inside the poll) with partitions a subscribed consumer has just taken, at their start positions.</summary>
    public Action<Consumer, IReadOnlyList<TopicPartition>>? PartitionsAssigned { get; set; }
}

/// <summary>A consumed record (copied out of the log, safe to keep).</summary>
public sealed class ConsumeResult
{
    internal ConsumeResult(TopicPartition partition, in Record record)
    {
        TopicPartition = partition;
        Offset = record.Offset;
        Timestamp = record.Timestamp;
        Key = record.HasKey ? record.Key.ToArray() : null;
        Value = record.HasValue ? record.Value.ToArray() : null;
        if (record.HeaderCount > 0)
        {
            var headers = new List<RecordHeader>(record.HeaderCount);
            foreach (RecordHeaderView h in record.Headers)
            {
                headers.Add(new RecordHeader(System.Text.Encoding.UTF8.GetString(h.Key), h.HasValue ? h.Value.ToArray() : null));
            }

            Headers = headers;
        }
        else
        {
            Headers = [];
        }
    }

    /// <summary>The partition.</summary>
    public TopicPartition TopicPartition { get; }

    /// <summary>The record's offset.</summary>
    public long Offset { get; }

    /// <summary>Create time, ms since the Unix epoch.</summary>
    public long Timestamp { get; }

    /// <summary>The key, or null.</summary>
    public byte[]? Key { get; }

    /// <summary>The value, or null.</summary>
    public byte[]? Value { get; }

    /// <summary>The headers.</summary>
    public IReadOnlyList<RecordHeader> Headers { get; }
}

/// <summary>The positions of a partition, as a consumer or a lag tool needs them.</summary>
/// <param name="LogStartOffset">First offset kept.</param>
/// <param name="HighWatermark">End of durable data (what read-uncommitted readers see up to).</param>
/// <param name="LastStableOffset">First offset of the earliest open transaction, or the HW.</param>
/// <param name="EndOffset">The end for the asking consumer's isolation level (HW or LSO).</param>
public readonly record struct Watermarks(long LogStartOffset, long HighWatermark, long LastStableOffset, long EndOffset);

/// <summary>
/// A consumer of one or more partitions, shaped like Kafka's: <see cref="Assign"/> or
/// <see cref="Subscribe"/>, <see cref="Seek"/>, <see cref="Consume"/> or the
/// <see cref="ConsumeAsync"/> stream (which waits for new data without polling), and committed
/// offsets in a consumer group (<see cref="Commit()"/>). Records of aborted transactions and control
/// records are never returned by a read-committed consumer; control records never by any.
/// <para>
/// Groups: consumers of one store that <see cref="Subscribe"/> with the same
/// <see cref="ConsumerOptions.GroupId"/> share the topics' partitions (Kafka's range assignor); a
/// consumer joining or leaving (<see cref="Unsubscribe"/>, <see cref="Dispose"/>) rebalances the group.
/// A consumer gives up a partition only at its own next poll (<see cref="Consume"/>, or the
/// <see cref="ConsumeAsync"/> loop asking for the next record), after
/// <see cref="ConsumerOptions.PartitionsRevoked"/>; the next owner takes it then, from the group's
/// committed offset, waiting for any transaction that still carries an offset of it. So no record is
/// read by two members at once, and with transactional offsets (<see cref="GroupMetadata"/>) none is
/// processed twice or skipped across a rebalance.
/// </para>
/// Not thread-safe: one consumer per thread or async flow (like Kafka's).
/// </summary>
public sealed partial class Consumer : IDisposable
{
    private readonly LogStore _store;
    private readonly ConsumerOptions _options;
    private readonly List<PartitionAssignment> _assignments = new();
    private int _next;          // round-robin start
    private bool _disposed;
    private ConsumerGroupMembership.Member? _member; // set while subscribed with a group
    private bool _inCallback;   // a rebalance callback runs (on this consumer's flow)
    private long _taken; // partitions a group member has taken, ever (ConsumeAsync: the wake-up tasks must cover them)

    internal Consumer(LogStore store, ConsumerOptions options)
    {
        _store = store;
        _options = options;
    }

    /// <summary>The assigned partitions.</summary>
    public IReadOnlyList<TopicPartition> Assignment
    {
        get
        {
            var list = new List<TopicPartition>(_assignments.Count);
            foreach (PartitionAssignment a in _assignments)
            {
                list.Add(a.TopicPartition);
            }

            return list;
        }
    }

    /// <summary>Assigns these partitions (replacing the assignment); each starts at the group's committed offset or per <see cref="ConsumerOptions.AutoOffsetReset"/>.</summary>
    /// <exception cref="NoOffsetForPartitionException">With <see cref="AutoOffsetReset.Error"/>: a partition has no committed offset for the group (or the consumer has no group); nothing is assigned.</exception>
    /// <exception cref="OffsetOutOfRangeException">With <see cref="AutoOffsetReset.Error"/>: a committed offset is outside the partition's range (retention deleted its records); nothing is assigned.</exception>
    /// <exception cref="InvalidOperationException">The consumer is subscribed as a member of its group (call <see cref="Unsubscribe"/> first; Kafka refuses mixing too).</exception>
    public void Assign(params IEnumerable<TopicPartition> partitions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ThrowIfInCallback();
        ArgumentNullException.ThrowIfNull(partitions);
        if (_member is not null)
        {
            throw new InvalidOperationException($"The consumer is subscribed as a member of group '{_member.Group.Id}': Unsubscribe before assigning partitions by hand.");
        }

        var next = new List<PartitionAssignment>();
        var seen = new HashSet<TopicPartition>();
        foreach (TopicPartition tp in partitions)
        {
            if (!seen.Add(tp))
            {
                continue; // an assignment is a set (as Kafka's): a partition listed twice is read once
            }

            LogPartition partition = _store.GetPartition(tp.Topic, tp.Partition);
            next.Add(new PartitionAssignment(tp, partition, StartOffset(tp, partition)));
        }

        DropAssignment();
        _assignments.AddRange(next);
    }

    /// <summary>Drops the assignment; a subscribed group member leaves its group (as <see cref="Unsubscribe"/>).</summary>
    public void Unassign() => Unsubscribe();

    private void DropAssignment()
    {
        foreach (PartitionAssignment a in _assignments)
        {
            a.Dispose();
        }

        _assignments.Clear();
        _next = 0;
    }

    private long StartOffset(TopicPartition tp, LogPartition partition)
    {
        long? committed = _options.GroupId is { } group ? _store.Groups.Committed(group, tp) : null;
        if (committed is { } at && at >= partition.LogStartOffset && at <= partition.LogEndOffset)
        {
            return at;
        }

        // No committed offset, or one out of range (retention deleted its records, or it is past the log
        // end): Kafka's auto.offset.reset decides, so Error never skips records silently.
        return _options.AutoOffsetReset switch
        {
            AutoOffsetReset.Earliest => partition.LogStartOffset,
            AutoOffsetReset.Latest => partition.EndOffset(_options.Isolation),
            _ when committed is null => throw new NoOffsetForPartitionException(tp, _options.GroupId, partition.LogStartOffset, partition.LogEndOffset),
            _ => throw new OffsetOutOfRangeException(tp, committed.Value, partition.LogStartOffset, partition.LogEndOffset),
        };
    }

    /// <summary>Moves the position of an assigned partition.</summary>
    /// <exception cref="OffsetOutOfRangeException">Outside [log start, log end].</exception>
    public void Seek(TopicPartition partition, long offset)
    {
        PartitionAssignment a = Find(partition);
        a.Partition.Log.CheckOffsetInRange(offset);
        a.Position = offset;
        a.CloseReader();
    }

    /// <summary>Moves to the log start offset.</summary>
    public void SeekToBeginning(TopicPartition partition) => Seek(partition, Find(partition).Partition.LogStartOffset);

    /// <summary>Moves to the end for the consumer's isolation level.</summary>
    public void SeekToEnd(TopicPartition partition) => Seek(partition, Find(partition).Partition.EndOffset(_options.Isolation));

    /// <summary>Moves to the first record at or after the timestamp (ms since the Unix epoch), or to the end when there is none.</summary>
    public void SeekToTimestamp(TopicPartition partition, long timestampMs)
    {
        PartitionAssignment a = Find(partition);
        Seek(partition, a.Partition.OffsetForTimestamp(timestampMs) ?? a.Partition.EndOffset(_options.Isolation));
    }

    /// <summary>The next offset the consumer will read on an assigned partition.</summary>
    public long Position(TopicPartition partition) => Find(partition).Position;

    /// <summary>HW, LSO and the end for this consumer's isolation level.</summary>
    public Watermarks GetWatermarks(TopicPartition partition)
    {
        LogPartition p = _store.GetPartition(partition.Topic, partition.Partition);

        // Each read once, in this order: all three only grow and LSO <= HW holds at every instant, so
        // log start <= LSO <= HW in the result (reading the HW first could report an LSO above it).
        long start = p.LogStartOffset;
        long lso = p.LastStableOffset;
        long hw = p.HighWatermark;
        return new Watermarks(start, hw, lso, _options.Isolation == IsolationLevel.ReadCommitted ? lso : hw);
    }

    /// <summary>
    /// Returns the next available record of any assigned partition (round-robin), or null when none is
    /// available now. When retention has deleted records at a partition's position that the consumer
    /// has not read, the position is reset as <see cref="ConsumerOptions.AutoOffsetReset"/> says
    /// (to the log start, or to the end for the isolation level) and logged (event 7001), as Kafka's
    /// consumer does.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The consumer or the store is disposed.</exception>
    /// <exception cref="TopicNotFoundException">A partition assigned with <see cref="Assign"/> (or <see cref="Subscribe"/> without a group) had its topic deleted; a subscribed group member instead drops the partitions of a deleted topic, without <see cref="ConsumerOptions.PartitionsRevoked"/> (their offsets went with the topic), and takes those of a topic created again under the name.</exception>
    /// <exception cref="OffsetOutOfRangeException">A partition's position is below its log start offset
    /// (retention deleted records the consumer had not read) and <see cref="ConsumerOptions.AutoOffsetReset"/>
    /// is <see cref="AutoOffsetReset.Error"/>; the message names the partition, <see cref="OffsetOutOfRangeException.Offset"/>
    /// is the position. The position is left there: later calls throw again until <see cref="Seek"/> moves it.</exception>
    public ConsumeResult? Consume()
    {
        BeginPoll();
        return ReadNext(endAtGroupChange: false);
    }

    /// <summary>
    /// One poll that returns up to <paramref name="maxRecords"/> records available now (round-robin over
    /// the assigned partitions; empty when none). Unlike a series of <see cref="Consume"/> calls, a
    /// group rebalance can happen only before the first record, so the records of one batch belong to
    /// one assignment: take <see cref="GroupMetadata"/> after it to send the batch's offsets to a
    /// transaction, fenced if the consumer's partitions change before the send (an eviction).
    /// Exceptions as for <see cref="Consume"/>, but only when no record was read yet: an exception after
    /// some records ends the batch, which returns them (the next poll meets the failure again).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxRecords"/> is less than 1.</exception>
    public IReadOnlyList<ConsumeResult> ConsumeBatch(int maxRecords)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRecords, 1);
        BeginPoll();
        var batch = new List<ConsumeResult>(Math.Min(maxRecords, 64));
        try
        {
            while (batch.Count < maxRecords && ReadNext(endAtGroupChange: batch.Count > 0) is { } record)
            {
                batch.Add(record);
            }
        }
        catch (Exception) when (batch.Count > 0)
        {
            // The positions have moved past the records read: thrown away here, they would never be
            // processed. Returned instead (as Kafka's fetcher does); the failing partition's position is
            // left where it failed, so the next poll reads it again and throws there.
        }

        return batch;
    }

    private void BeginPoll()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ThrowIfInCallback();
        _store.ThrowIfDisposed(); // a reader of a closed store would report "caught up" for ever
        if (_member is { } polling)
        {
            PollGroup(polling);
        }
    }

    // The next record of any assigned partition, or null. A group member that finds a deleted topic's
    // partition follows the group's change (which may take and give up partitions) unless a batch is
    // under way (endAtGroupChange): then the batch ends here and the next poll follows it.
    private ConsumeResult? ReadNext(bool endAtGroupChange)
    {
        int count = _assignments.Count;
        for (int i = 0; i < count; i++)
        {
            PartitionAssignment a = _assignments[(_next + i) % count];
            if (a.Partition.Deleted)
            {
                if (_member is not { } member)
                {
                    throw new TopicNotFoundException(a.TopicPartition.Topic);
                }

                // A subscribed member drops the deleted topic's partitions (and takes those of a topic
                // created again under the name) instead of failing, as a Kafka subscriber does.
                member.Membership.TopicChanged(a.TopicPartition.Topic);
                if (endAtGroupChange)
                {
                    return null; // the next poll follows the change
                }

                SyncGroup();
                return ReadNext(endAtGroupChange);
            }

            if (TryRead(a, out Record record))
            {
                _next = (_next + i + 1) % count;
                return new ConsumeResult(a.TopicPartition, record);
            }
        }

        return null;
    }

    // Reads the next record of one partition and moves its position. A position that retention left
    // below the log start (found by the reader, or when a reader is opened at it) is reset as
    // AutoOffsetReset says, as Kafka's consumer does on an out-of-range fetch, and the read retried.
    private bool TryRead(PartitionAssignment a, out Record record)
    {
        while (true)
        {
            try
            {
                LogReader reader = a.Reader(_options.Isolation);
                if (reader.TryRead(out record))
                {
                    a.Position = record.Offset + 1;
                    return true;
                }

                a.Position = reader.Position;
                return false;
            }
            catch (OffsetOutOfRangeException e) when (e.Offset < e.LogStartOffset)
            {
                if (!TryResetPosition(a, e))
                {
                    throw;
                }
            }
        }
    }

    // Moves a position that fell below the log start as AutoOffsetReset says; false for Error (the caller
    // rethrows). The records between the lost position and the log start are gone, so Earliest skips
    // nothing still in the log. After Error the position stays at the lost offset: every later Consume
    // throws again until the caller seeks.
    private bool TryResetPosition(PartitionAssignment a, OffsetOutOfRangeException lost)
    {
        a.CloseReader();
        a.Position = lost.Offset; // a reader may have passed control records beyond the last returned record
        long reset;
        string policy;
        switch (_options.AutoOffsetReset)
        {
            case AutoOffsetReset.Earliest:
                reset = a.Partition.LogStartOffset; // read after the failed read: at or above the exception's
                policy = nameof(AutoOffsetReset.Earliest);
                break;
            case AutoOffsetReset.Latest:
                reset = a.Partition.EndOffset(_options.Isolation); // never below the log start (the LSO is not)
                policy = nameof(AutoOffsetReset.Latest);
                break;
            default:
                return false;
        }

        a.Position = reset;
        LogMessages.ConsumerPositionReset(_store.Telemetry.Logger, _options.GroupId ?? "(none)", a.TopicPartition.ToString(), lost.Offset, lost.LogStartOffset, reset, policy);
        return true;
    }

    /// <summary>
    /// Consumes records as they arrive, waiting (without polling) for new data when caught up, until
    /// <paramref name="cancellationToken"/> is cancelled (the enumeration then throws
    /// <see cref="OperationCanceledException"/>).
    /// </summary>
    /// <exception cref="ObjectDisposedException">The store (or this consumer) was closed, also while waiting.</exception>
    /// <exception cref="TopicNotFoundException">As for <see cref="Consume"/>, also while waiting.</exception>
    /// <exception cref="OffsetOutOfRangeException">Retention deleted records at a partition's position that the
    /// consumer had not read, also while waiting, and <see cref="ConsumerOptions.AutoOffsetReset"/> is
    /// <see cref="AutoOffsetReset.Error"/> (with <see cref="AutoOffsetReset.Earliest"/> or <see cref="AutoOffsetReset.Latest"/>
    /// the loop resets the position and goes on, as <see cref="Consume"/> does).</exception>
    public async IAsyncEnumerable<ConsumeResult> ConsumeAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        // Registered for this enumeration only: leaving the loop early removes it from the caller's token.
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using CancellationTokenRegistration registration = cancellationToken.UnsafeRegister(
            static state => ((TaskCompletionSource)state!).TrySetResult(), cancelled);
        Task[]? waits = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ConsumeResult? result = Consume();
            if (result is null)
            {
                // Caught up: take the wake-up tasks, then look once more, so a record that arrived after
                // the first look still wakes us. (Only here: reading a backlog allocates no tasks.)
                int count = _assignments.Count;
                long takenBefore = _taken;
                ConsumerGroupMembership.Member? memberBefore = _member;
                int extra = _member is null ? 2 : 4;
                if (waits is null || waits.Length != count + extra)
                {
                    waits = new Task[count + extra];
                }

                for (int i = 0; i < count; i++)
                {
                    waits[i] = _assignments[i].Partition.Signal.WaitTask;
                }

                waits[count] = cancelled.Task;
                waits[count + 1] = _store.Closing; // with nothing assigned, no partition's close wakes us
                if (_member is { } member)
                {
                    // A rebalance or a released partition; and, only while the member waits to take a
                    // partition (an unsettled offset holds it back), the offsets partition's moves, which
                    // would otherwise wake it at every offset commit of the store. (A member whose target
                    // changes meanwhile is woken by the first signal and takes this one next time.)
                    waits[count + 2] = member.Group.Changed.WaitTask;
                    waits[count + 3] = member.NeedsSync ? _store.Groups.Partition.Signal.WaitTask : cancelled.Task;
                }

                result = Consume();
                if (result is null)
                {
                    if (_taken != takenBefore || _member != memberBefore)
                    {
                        // The second look took a partition (freed meanwhile), or rejoined after an
                        // eviction: its wake-up tasks are not among these, so take them again rather
                        // than sleep through its records.
                        Array.Clear(waits);
                        continue;
                    }

                    await WaitWhilePollingAsync(Task.WhenAny(waits), memberBefore).ConfigureAwait(false);
                    Array.Clear(waits);
                    continue; // Consume throws if the store closed or a topic was deleted meanwhile, and resets (or throws for) a position retention passed
                }

                Array.Clear(waits);
            }

            yield return result;
        }
    }

    /// <summary>Commits the current positions of all assigned partitions to the group.</summary>
    public ValueTask Commit()
    {
        var offsets = new List<TopicPartitionOffset>(_assignments.Count);
        foreach (PartitionAssignment a in _assignments)
        {
            offsets.Add(new TopicPartitionOffset(a.TopicPartition, a.Position));
        }

        return Commit(offsets);
    }

    /// <summary>Commits offsets (the next offsets to consume) to the group, outside any transaction.</summary>
    /// <exception cref="TopicNotFoundException">An offset is of an assigned partition whose topic is being or was deleted (its offsets are deleted with it; written again they would start a topic created again under the name past its first records). Nothing is committed.</exception>
    /// <exception cref="CommitFailedException">The consumer is a subscribed group member and does not own one of the partitions (any more): another member may be reading it. Nothing is committed. (A partition of its current target that nobody owns and with no unsettled offset may be committed: so a member whose take failed with <see cref="AutoOffsetReset.Error"/> commits a start for it.)</exception>
    public ValueTask Commit(IReadOnlyCollection<TopicPartitionOffset> offsets)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string group = _options.GroupId ?? throw new InvalidOperationException("Committing offsets needs ConsumerOptions.GroupId.");
        ArgumentNullException.ThrowIfNull(offsets);
        LogPartition[] read = AssignedPartitions(); // offsets of one whose topic is being deleted are refused
        if (_member is not { } member)
        {
            return _store.Groups.CommitAsync(group, offsets, read);
        }

        // A member commits only partitions it owns: written (and registered as unsettled, so a member
        // taking a partition over waits for it) while no hand-over can happen. The wait for durability
        // (an fsync in GroupCommit mode) is outside the membership lock, which every group of the store shares.
        GroupCoordinator.PlainCommit? appended = null;
        member.Membership.RunIfOwner(member, offsets, () => appended = _store.Groups.AppendCommit(group, offsets, read));
        return _store.Groups.AcknowledgeAsync(appended);
    }

    // The partitions (incarnations) this consumer reads now.
    private LogPartition[] AssignedPartitions()
    {
        var partitions = new LogPartition[_assignments.Count];
        for (int i = 0; i < partitions.Length; i++)
        {
            partitions[i] = _assignments[i].Partition;
        }

        return partitions;
    }

    /// <summary>
    /// The group's committed offset for a partition, or null: the offsets in effect now. An offset sent
    /// to a transaction takes effect when the transaction is visible, which can be a little after its
    /// commit returned; <see cref="SeekToCommittedAsync"/> waits for such offsets.
    /// </summary>
    public long? Committed(TopicPartition partition)
    {
        string group = _options.GroupId ?? throw new InvalidOperationException("Committed offsets need ConsumerOptions.GroupId.");
        return _store.Groups.Committed(group, partition);
    }

    private PartitionAssignment Find(TopicPartition partition)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return TryFind(partition) ?? throw new InvalidOperationException($"Partition {partition} is not assigned to this consumer.");
    }

    private PartitionAssignment? TryFind(TopicPartition partition)
    {
        foreach (PartitionAssignment a in _assignments)
        {
            if (a.TopicPartition == partition)
            {
                return a;
            }
        }

        return null;
    }

    /// <summary>Releases the readers; a subscribed group member leaves its group (as <see cref="Unsubscribe"/>).</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            try
            {
                Unassign(); // first: a revoke callback may still commit
            }
            finally
            {
                _disposed = true;
            }
        }
    }

    private sealed class PartitionAssignment(TopicPartition topicPartition, LogPartition partition, long position) : IDisposable
    {
        private LogReader? _reader;

        public TopicPartition TopicPartition { get; } = topicPartition;

        public LogPartition Partition { get; } = partition;

        public long Position { get; set; } = position;

        public LogReader Reader(IsolationLevel isolation) => _reader ??= Partition.OpenReader(Position, isolation);

        public void CloseReader()
        {
            _reader?.Dispose();
            _reader = null;
        }

        public void Dispose() => CloseReader();
    }
}
