using System.Globalization;

namespace TxLog;

/// <summary>A topic name and a partition number.</summary>
/// <param name="Topic">The topic.</param>
/// <param name="Partition">The partition number.</param>
public readonly record struct TopicPartition(string Topic, int Partition)
{
    /// <inheritdoc/>
    public override string ToString() => Topic + "-" + Partition.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A topic partition and an offset (a consumer position or a committed offset).</summary>
/// <param name="TopicPartition">The partition.</param>
/// <param name="Offset">The offset: for a committed offset, the next offset to consume.</param>
public readonly record struct TopicPartitionOffset(TopicPartition TopicPartition, long Offset);
