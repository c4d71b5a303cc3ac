namespace TxLog;

/// <summary>
/// Read-committed end offsets of several partitions taken at one instant (see
/// <see cref="LogStore.CaptureCut"/>): a committed transaction is below the cut on all of its
/// partitions or on none. Immutable.
/// </summary>
public sealed class ConsistentCut
{
    private readonly Dictionary<TopicPartition, long> _ends;

    internal ConsistentCut(Dictionary<TopicPartition, long> ends)
    {
        _ends = ends;
    }

    /// <summary>The partitions in the cut and their end offsets (exclusive).</summary>
    public IReadOnlyDictionary<TopicPartition, long> EndOffsets => _ends;

    /// <summary>The end offset (exclusive) of a partition in the cut.</summary>
    /// <exception cref="ArgumentException">The partition is not part of the cut.</exception>
    public long EndOffset(TopicPartition partition) =>
        _ends.TryGetValue(partition, out long end) ? end : throw new ArgumentException($"Partition {partition} is not part of this cut.", nameof(partition));
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
