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
