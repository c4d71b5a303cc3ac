using System.Buffers.Binary;
using System.Text;
using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Records;

namespace TxLog.Inspection;

/// <summary>A transactional id (or a producer with an open transaction) as a read-only replay sees it.</summary>
/// <param name="TransactionalId">The id, or null for an open transaction whose producer no coordinator record names.</param>
/// <param name="ProducerId">Producer id.</param>
/// <param name="Epoch">Epoch: the coordinator's, or higher when a partition saw a higher one (as recovery takes it).</param>
/// <param name="State">The state: the coordinator's record, or <see cref="TransactionState.Ongoing"/> when a partition holds an open transaction of the producer (Ongoing is never written to the coordinator log).</param>
/// <param name="Partitions">For an open transaction: its partitions, with the first offset there when known.</param>
/// <param name="StartedMs">When the open transaction wrote its first record (ms since the epoch), when known.</param>
/// <param name="TimeoutMs">The transaction timeout from the coordinator record, or -1.</param>
/// <param name="RecoveryOutcome">For an open transaction: what opening the store would do with it.</param>
internal sealed record TransactionInfo(string? TransactionalId, long ProducerId, short Epoch, TransactionState State,
    IReadOnlyList<(TopicPartition Partition, long? FirstOffset)> Partitions, long? StartedMs, int TimeoutMs, ControlRecordType? RecoveryOutcome)
{
    /// <summary>True for Ongoing and the Prepare states: markers are missing somewhere.</summary>
    public bool IsOpen => State is TransactionState.Ongoing or TransactionState.PrepareCommit or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence;
}

/// <summary>A committed consumer-group offset, with the partition's ends.</summary>
/// <param name="Group">The group.</param>
/// <param name="Partition">The partition.</param>
/// <param name="Offset">The committed offset (the next offset to consume).</param>
internal sealed record CommittedOffset(string Group, TopicPartition Partition, long Offset);

/// <summary>Offsets sent to a transaction that has no marker yet (not committed, not counted).</summary>
/// <param name="ProducerId">The transaction's producer.</param>
/// <param name="Group">The group.</param>
/// <param name="Partition">The partition.</param>
/// <param name="Offset">The offset it would commit.</param>
internal sealed record PendingOffset(long ProducerId, string Group, TopicPartition Partition, long Offset);

/// <summary>
/// Read-only inspection of a data directory: topics, partitions, the coordinator state replayed
/// from <c>__transaction_state</c>, consumer-group offsets replayed from <c>__consumer_offsets</c>,
/// each computed the way the store computes it at open. Never writes; safe on a closed store, and
/// on an open one gives a possibly inconsistent picture of the files.
/// </summary>
internal sealed class StoreInspection
{
    private readonly Dictionary<TopicPartition, PartitionInspector> _partitions = new();
    private readonly List<string> _problems = new();

    private StoreInspection(DataDirectory directory, List<TopicDescription> topics, int maxBatchBytes)
    {
        Directory = directory;
        Topics = topics;
        MaxBatchBytes = maxBatchBytes;
        CleanShutdown = directory.CleanShutdown;
    }

    public DataDirectory Directory { get; }

    /// <summary>Every topic in the topic list, internal ones included, in name order.</summary>
    public IReadOnlyList<TopicDescription> Topics { get; }

    public int MaxBatchBytes { get; }

    public bool CleanShutdown { get; }

    /// <summary>Records that could not be decoded while replaying the internal logs.</summary>
    public IReadOnlyList<string> Problems => _problems;

    /// <summary>Opens the directory; throws <see cref="CorruptIndexException"/> when the topic list is corrupt.</summary>
    public static StoreInspection Open(string path, int maxBatchBytes)
    {
        var directory = new DataDirectory(path);
        List<TopicDescription> topics = directory.ReadTopics();
        topics.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        return new StoreInspection(directory, topics, maxBatchBytes);
    }

    /// <summary>The partition's inspector (created on first use), or null when the topic does not exist.</summary>
    public PartitionInspector? Partition(string topic, int partition)
    {
        var tp = new TopicPartition(topic, partition);
        if (_partitions.TryGetValue(tp, out PartitionInspector? inspector))
        {
            return inspector;
        }

        TopicDescription? description = Topics.FirstOrDefault(t => t.Name == topic);
        if (description is null || partition < 0 || partition >= description.Partitions)
        {
            return null;
        }

        inspector = new PartitionInspector(Directory.PartitionDirectory(topic, partition), topic, partition, MaxBatchBytes, CleanShutdown);
        _partitions.Add(tp, inspector);
        return inspector;
    }

    /// <summary>Every partition of every topic.</summary>
    public IEnumerable<PartitionInspector> AllPartitions()
    {
        foreach (TopicDescription topic in Topics)
        {
            for (int p = 0; p < topic.Partitions; p++)
            {
                yield return Partition(topic.Name, p)!;
            }
        }
    }

    /// <summary>
    /// The coordinator's table replayed from <c>__transaction_state</c>-0 (latest record per id wins),
    /// as <see cref="TransactionCoordinator"/> replays it at open.
    /// </summary>
    public Dictionary<string, TransactionMetadata> ReplayCoordinator()
    {
        var transactions = new Dictionary<string, TransactionMetadata>(StringComparer.Ordinal);
        PartitionInspector? log = Partition(TransactionCoordinator.TopicName, 0);
        if (log is null || log.LogEndOffset == log.LogStartOffset)
        {
            return transactions;
        }

        log.ForEachBatch(log.LogStartOffset, (batch, segment, position) =>
        {
            if (batch.IsControl)
            {
                return true;
            }

            try
            {
                foreach (Record record in batch)
                {
                    if (!record.HasKey || record.Key.Length == 0 || !record.HasValue)
                    {
                        _problems.Add($"{segment.LogPath} @ {position}: malformed {TransactionCoordinator.TopicName} record at offset {record.Offset}");
                        continue;
                    }

                    if (record.Key[0] == TransactionLogRecords.MetadataType)
                    {
                        string id = Encoding.UTF8.GetString(record.Key.Slice(1));
                        transactions[id] = TransactionLogRecords.ReadMetadata(id, record.Value);
                    }
                }
            }
            catch (CorruptRecordException e)
            {
                _problems.Add($"{segment.LogPath} @ {position}: {e.Message}");
            }

            return true;
        });
        return transactions;
    }

    /// <summary>
    /// The transactional ids and open transactions: the coordinator's table combined with what the
    /// partitions hold open (Ongoing is never in the coordinator log: the partitions say it).
    /// </summary>
    public List<TransactionInfo> Transactions()
    {
        Dictionary<string, TransactionMetadata> coordinator = ReplayCoordinator();
        var openByProducer = new Dictionary<long, List<(PartitionInspector Partition, OpenTransaction Open)>>();
        var epochs = new Dictionary<long, short>();
        foreach (PartitionInspector p in AllPartitions())
        {
            if (!p.Exists)
            {
                continue;
            }

            foreach (OpenTransaction open in p.OpenTransactions)
            {
                if (!openByProducer.TryGetValue(open.ProducerId, out var list))
                {
                    list = new();
                    openByProducer.Add(open.ProducerId, list);
                }

                list.Add((p, open));
            }

            foreach (TransactionMetadata m in coordinator.Values)
            {
                if (p.ProducerState.Get(m.ProducerId) is { } entry && entry.Epoch > epochs.GetValueOrDefault(m.ProducerId, short.MinValue))
                {
                    epochs[m.ProducerId] = entry.Epoch;
                }
            }
        }

        var result = new List<TransactionInfo>();
        var named = new HashSet<long>();
        foreach (TransactionMetadata m in coordinator.Values)
        {
            named.Add(m.ProducerId);
            short epoch = Math.Max(m.Epoch, epochs.GetValueOrDefault(m.ProducerId, short.MinValue));
            openByProducer.TryGetValue(m.ProducerId, out var open);
            var partitions = new List<(TopicPartition, long?)>();
            long? started = m.StartMs >= 0 ? m.StartMs : null;
            TransactionState state = m.State;
            ControlRecordType? outcome = null;
            if (m.State is TransactionState.PrepareCommit or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence or TransactionState.Ongoing)
            {
                foreach (TopicPartition tp in m.Partitions.Keys)
                {
                    OpenTransaction? here = open?.FirstOrDefault(o => o.Partition.TopicPartition == tp).Open;
                    partitions.Add((tp, here?.FirstOffset));
                }

                outcome = m.State == TransactionState.PrepareCommit && CommitDataComplete(m) ? ControlRecordType.Commit : ControlRecordType.Abort;
            }

            if (open is { Count: > 0 })
            {
                if (state is not (TransactionState.PrepareCommit or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence))
                {
                    state = TransactionState.Ongoing;

                    // A committed transaction whose COMMIT markers a power loss took is still named by
                    // the id's records: recovery writes the lost markers (commits), it does not abort.
                    outcome = open.All(x => LostCommitMarker(coordinator, x.Partition.TopicPartition, x.Open))
                        ? ControlRecordType.Commit
                        : ControlRecordType.Abort;
                }

                foreach ((PartitionInspector p, OpenTransaction o) in open)
                {
                    if (!partitions.Any(x => x.Item1 == p.TopicPartition))
                    {
                        partitions.Add((p.TopicPartition, o.FirstOffset));
                    }

                    if (o.FirstTimestampMs is { } ts && (started is null || ts < started))
                    {
                        started = ts;
                    }
                }
            }

            if (!(state is TransactionState.Ongoing or TransactionState.PrepareCommit or TransactionState.PrepareAbort or TransactionState.PrepareEpochFence))
            {
                started = null;
            }

            partitions.Sort(static (a, b) => string.CompareOrdinal(a.Item1.ToString(), b.Item1.ToString()));
            result.Add(new TransactionInfo(m.TransactionalId, m.ProducerId, epoch, state, partitions, started, m.TimeoutMs, outcome));
        }

        foreach ((long pid, var open) in openByProducer)
        {
            if (named.Contains(pid))
            {
                continue;
            }

            var partitions = open.Select(o => (o.Partition.TopicPartition, (long?)o.Open.FirstOffset)).ToList();
            long? started = open.Where(o => o.Open.FirstTimestampMs is not null).Select(o => o.Open.FirstTimestampMs).Min();
            short epoch = open.Max(o => o.Open.Epoch);
            ControlRecordType unknownOutcome = open.All(x => LostCommitMarker(coordinator, x.Partition.TopicPartition, x.Open)) ? ControlRecordType.Commit : ControlRecordType.Abort;
            result.Add(new TransactionInfo(null, pid, epoch, TransactionState.Ongoing, partitions, started, -1, unknownOutcome));
        }

        result.Sort(CompareTransactions);
        return result;
    }

    private static int CompareTransactions(TransactionInfo a, TransactionInfo b)
    {
        if ((a.TransactionalId is null) != (b.TransactionalId is null))
        {
            return a.TransactionalId is null ? 1 : -1;
        }

        int c = string.CompareOrdinal(a.TransactionalId, b.TransactionalId);
        return c != 0 ? c : a.ProducerId.CompareTo(b.ProducerId);
    }

    // Recovery's rule for the data a committed transaction left without its COMMIT marker (see
    // TransactionCoordinator.Recover): an open transaction of the producer and epoch of a commit that
    // a record still lists as unconfirmed, starting at or below that commit's last offset there.
    private static bool LostCommitMarker(Dictionary<string, TransactionMetadata> coordinator, TopicPartition tp, OpenTransaction open)
    {
        foreach (TransactionMetadata m in coordinator.Values)
        {
            foreach (UnconfirmedCommit c in m.UnconfirmedCommits)
            {
                if (c.Owns(tp, open.ProducerId, open.Epoch, open.FirstOffset))
                {
                    return true;
                }
            }
        }

        return false;
    }

    // Recovery's rule for a PrepareCommit: commit when every partition's log end is past the last
    // offset the record names, else abort.
    private bool CommitDataComplete(TransactionMetadata m)
    {
        foreach ((TopicPartition tp, long lastOffset) in m.Partitions)
        {
            PartitionInspector? p = Partition(tp.Topic, tp.Partition);
            if (p is null || p.LogEndOffset <= lastOffset)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// The committed offsets replayed from <c>__consumer_offsets</c>-0 as <see cref="GroupCoordinator"/>
    /// applies them: plain records count at once; records of a transaction count when its COMMIT
    /// marker arrives and are dropped at its ABORT; those still waiting for a marker are returned as pending.
    /// </summary>
    public (List<CommittedOffset> Committed, List<PendingOffset> Pending) ReplayConsumerOffsets()
    {
        var committed = new Dictionary<(string, TopicPartition), long>();
        var committedAt = new Dictionary<(string, TopicPartition), long>();
        var pending = new Dictionary<long, List<((string Group, TopicPartition Partition) Key, long Offset, long RecordOffset)>>();
        PartitionInspector? log = Partition(GroupCoordinator.TopicName, 0);
        if (log is not null && log.LogEndOffset > log.LogStartOffset)
        {
            log.ForEachBatch(log.LogStartOffset, (batch, segment, position) =>
            {
                try
                {
                    GroupCoordinator.ApplyBatch(batch, committed, committedAt, pending);
                }
                catch (CorruptRecordException e)
                {
                    _problems.Add($"{segment.LogPath} @ {position}: {e.Message}");
                }

                return true;
            });
        }

        var list = committed.Select(c => new CommittedOffset(c.Key.Item1, c.Key.Item2, c.Value)).ToList();
        list.Sort(static (a, b) =>
        {
            int c = string.CompareOrdinal(a.Group, b.Group);
            c = c != 0 ? c : string.CompareOrdinal(a.Partition.Topic, b.Partition.Topic);
            return c != 0 ? c : a.Partition.Partition.CompareTo(b.Partition.Partition);
        });
        var open = new List<PendingOffset>();
        foreach ((long pid, var entries) in pending)
        {
            foreach (((string group, TopicPartition tp), long offset, long _) in entries)
            {
                open.Add(new PendingOffset(pid, group, tp, offset));
            }
        }

        return (list, open);
    }
}
