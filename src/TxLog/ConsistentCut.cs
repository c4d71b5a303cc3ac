namespace TxLog;

/// <summary>
/// Read-committed end offsets of several partitions taken at one instant (see
/// <see cref="LogStore.CaptureCut"/>): a committed transaction is below the cut on all of its
/// partitions or on none. Immutable. A cut belongs to the partitions it was captured from: a partition
/// of another store (another directory, or the same directory opened again), or of a topic deleted and
/// created again under the same name since, refuses it.
/// </summary>
public sealed class ConsistentCut
{
    private readonly Dictionary<TopicPartition, long> _ends;
    private readonly Dictionary<TopicPartition, LogPartition> _partitions;

    internal ConsistentCut(LogStore store, Dictionary<TopicPartition, long> ends, Dictionary<TopicPartition, LogPartition> partitions)
    {
        Store = store;
        _ends = ends;
        _partitions = partitions;
    }

    /// <summary>The store the cut was captured in.</summary>
    internal LogStore Store { get; }

    /// <summary>The partitions in the cut and their end offsets (exclusive).</summary>
    public IReadOnlyDictionary<TopicPartition, long> EndOffsets => _ends;

    /// <summary>The end offset (exclusive) of a partition in the cut.</summary>
    /// <exception cref="ArgumentException">The partition is not part of the cut.</exception>
    public long EndOffset(TopicPartition partition) =>
        _ends.TryGetValue(partition, out long end) ? end : throw new ArgumentException($"Partition {partition} is not part of this cut.", nameof(partition));

    /// <summary>
    /// The end offset of <paramref name="partition"/>, which must be the very partition the cut was
    /// captured from; otherwise <see cref="ArgumentException"/> naming <paramref name="parameterName"/>.
    /// </summary>
    internal long EndOffsetFor(LogPartition partition, string parameterName)
    {
        var tp = new TopicPartition(partition.Topic, partition.Partition);
        if (!ReferenceEquals(partition.Store, Store))
        {
            throw new ArgumentException($"The cut was captured by another store (directory '{Store.Directory}'); partition {tp} belongs to the store of '{partition.Store.Directory}'. Capture a cut of this store.", parameterName);
        }

        if (!_partitions.TryGetValue(tp, out LogPartition? captured))
        {
            throw new ArgumentException($"Partition {tp} is not part of this cut.", parameterName);
        }

        if (!ReferenceEquals(captured, partition))
        {
            throw new ArgumentException($"Partition {tp} was deleted and created again since the cut was captured: the cut's offset belongs to the old log.", parameterName);
        }

        return _ends[tp];
    }
}

/// <summary>
/// One instant of the whole store: a <see cref="ConsistentCut"/> of partitions and a RepeatableRead
/// transaction of the maps, consistent with each other (see <see cref="LogStore.CaptureSnapshot"/>).
/// </summary>
/// <param name="Cut">The partitions' read-committed end offsets.</param>
/// <param name="Maps">A read-only use of this RepeatableRead transaction sees the maps at the same instant.</param>
public sealed record StoreSnapshot(ConsistentCut Cut, Mvcc.MvccTransaction Maps) : IDisposable
{
    /// <summary>Ends the maps transaction.</summary>
    public void Dispose() => Maps.Dispose();
}
