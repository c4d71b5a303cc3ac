namespace TxLog.Consuming;

/// <summary>
/// A subscribed consumer's place in its group when this was taken, for offsets sent to a transaction
/// (<see cref="Producers.Producer.SendOffsetsToTransactionAsync(IEnumerable{TopicPartitionOffset}, ConsumerGroupMetadata, CancellationToken)"/>):
/// the send is refused with <see cref="CommitFailedException"/> unless that member still owns every
/// partition of the offsets and has neither taken nor given up any partition since this was taken
/// (Kafka's <c>ConsumerGroupMetadata</c> fencing, where a stale generation is refused). So take it
/// right after the one poll that returned the batch (<see cref="Consumer.ConsumeBatch"/>), or before the
/// first <see cref="Consumer.Consume"/> of a batch read with several polls: a rebalance in between
/// (which happens only inside a poll) or an eviction then fences the batch, whose records could
/// otherwise include a partition's records twice (given up, then taken back from the committed offset).
/// </summary>
public sealed class ConsumerGroupMetadata
{
    internal ConsumerGroupMetadata(string groupId, ConsumerGroupMembership.Member? member, LogPartition[] partitions)
    {
        GroupId = groupId;
        Partitions = partitions;
        Member = member;
        MemberId = member?.Id;
        GenerationId = member?.Generation ?? -1;
        OwnershipEpoch = member is null ? 0 : Volatile.Read(ref member.OwnershipEpoch);
    }

    /// <summary>The group.</summary>
    public string GroupId { get; }

    /// <summary>The member id (null for a consumer with a manual assignment, which is not a member).</summary>
    public string? MemberId { get; }

    /// <summary>The group generation the member was in when this was taken (-1 for no member).</summary>
    public long GenerationId { get; }

    internal ConsumerGroupMembership.Member? Member { get; }

    internal long OwnershipEpoch { get; }

    /// <summary>
    /// The consumer's assigned partitions (the incarnations it read) when this was taken: offsets of one
    /// whose topic has been deleted since are refused (they would otherwise outlive the deletion's
    /// tombstones and start a topic created again under the name past its first records).
    /// </summary>
    internal LogPartition[] Partitions { get; }
}
