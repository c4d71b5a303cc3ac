namespace TxLog.Consuming;

/// <summary>
/// The members of a store's consumer groups (consumers that called <see cref="Consumer.Subscribe"/>
/// with a <see cref="ConsumerOptions.GroupId"/>) and which member owns which partition.
/// <para>
/// Assignment: Kafka's range assignor. Per topic, the members subscribed to it in join order; with
/// <c>n</c> partitions and <c>m</c> members, each gets <c>n / m</c> consecutive partitions and the first
/// <c>n % m</c> one more. A join, a leave, or the creation or deletion of a subscribed topic is a new
/// generation and recomputes every member's target.
/// </para>
/// <para>
/// Hand-over: a partition changes owner only when its previous owner lets it go, which that consumer
/// does at its own next poll (after its <see cref="ConsumerOptions.PartitionsRevoked"/> callback) or
/// when it leaves. So two members never read one partition at the same time, and an owner can commit
/// offsets of its partitions until it polls again. The new owner also waits while a transaction that
/// has not ended yet carries offsets of the group on that partition (Kafka's "stable offsets", KIP-447):
/// it starts at the offset that transaction's outcome leaves.
/// </para>
/// <para>
/// Idle members: one that neither polls nor waits in its consume loop for longer than its max poll
/// interval is evicted (<see cref="EvictIdle"/>), and its partitions are free at once. Fencing: each
/// member's <see cref="Member.OwnershipEpoch"/> changes with every partition it takes or gives up, so
/// offsets sent with group metadata taken before such a change are refused (<see cref="RunIfOwner"/>).
/// </para>
/// Thread-safe (one lock per store).
/// </summary>
internal sealed class ConsumerGroupMembership
{
    private readonly object _lock = new();
    private readonly Dictionary<string, Group> _groups = new(StringComparer.Ordinal);
    private readonly Func<string, int?> _partitionCount;
    private readonly GroupCoordinator _offsets;
    private readonly Action<Member, long, int>? _onEvicted;
    private long _lastMemberId;

    /// <param name="partitionCount">The partition count of a topic, or null when it does not exist.</param>
    /// <param name="offsets">The committed offsets (for the pending-offset rule of the hand-over).</param>
    /// <param name="onEvicted">Told (outside the lock) of each evicted member, its idle time (ms) and how many partitions it lost.</param>
    public ConsumerGroupMembership(Func<string, int?> partitionCount, GroupCoordinator offsets, Action<Member, long, int>? onEvicted = null)
    {
        _partitionCount = partitionCount;
        _offsets = offsets;
        _onEvicted = onEvicted;
    }

    /// <summary>One group's members and owners.</summary>
    internal sealed class Group(string id)
    {
        public string Id { get; } = id;

        /// <summary>In join order (which is also member-id order).</summary>
        public List<Member> Members { get; } = new();

        public Dictionary<TopicPartition, Member> Owners { get; } = new();

        public long Generation { get; set; }

        /// <summary>Bumped at every change a member may have to act on (new targets, a released partition).</summary>
        public long Version;

        /// <summary>Pulsed with every <see cref="Version"/> change: wakes waiting consume loops.</summary>
        public AsyncSignal Changed { get; } = new();

        /// <summary>When a poll of a member last looked for idle members (ms, store clock).</summary>
        public long LastEvictionCheckMs;
    }

    /// <summary>One subscribed consumer.</summary>
    internal sealed class Member(ConsumerGroupMembership owner, Group group, string id, string[] topics, long maxPollMs, long nowMs)
    {
        /// <summary>The longest the member may go without polling before the others take its partitions (ms; long.MaxValue: never).</summary>
        public long MaxPollMs { get; } = maxPollMs;

        /// <summary>The start of its last poll (ms, store clock).</summary>
        public long LastPollMs = nowMs;

        /// <summary>1 while its consume loop waits for data: a waiting member is polling, never idle.</summary>
        public int Waiting;

        /// <summary>Changes (under the lock) whenever the member takes or gives up a partition, or leaves.</summary>
        public long OwnershipEpoch;

        public ConsumerGroupMembership Membership { get; } = owner;

        public Group Group { get; } = group;

        public string Id { get; } = id;

        public string[] Topics { get; } = topics;

        /// <summary>The partitions the current generation gives this member (guarded by the lock).</summary>
        public List<TopicPartition> Target { get; } = new();

        public long Generation { get; set; }

        /// <summary>The group version this member last synced to, and whether it then held its whole target.</summary>
        public long SyncedVersion = -1;

        public bool Complete;

        /// <summary>Set (under the lock) when it left or was evicted.</summary>
        public bool Left
        {
            get => Volatile.Read(ref _left);
            set => Volatile.Write(ref _left, value);
        }

        private bool _left;

        /// <summary>True when the member must look at its assignment again.</summary>
        public bool NeedsSync => !Volatile.Read(ref Complete) || Volatile.Read(ref Group.Version) != Volatile.Read(ref SyncedVersion);
    }

    /// <summary>Adds a member subscribed to <paramref name="topics"/>; a new generation of its group.</summary>
    public Member Join(string groupId, IReadOnlyCollection<string> topics, long maxPollMs, long nowMs)
    {
        Member member;
        lock (_lock)
        {
            if (!_groups.TryGetValue(groupId, out Group? group))
            {
                group = new Group(groupId);
                _groups.Add(groupId, group);
            }

            string id = "member-" + (++_lastMemberId).ToString("D10", System.Globalization.CultureInfo.InvariantCulture);
            member = new Member(this, group, id, [.. topics], maxPollMs, nowMs);
            group.Members.Add(member);
            RebalanceUnsynchronized(group);
        }

        member.Group.Changed.Pulse();
        return member;
    }

    /// <summary>Removes a member and frees its partitions; a new generation of its group. Idempotent.</summary>
    public void Leave(Member member)
    {
        lock (_lock)
        {
            if (member.Left)
            {
                return;
            }

            RemoveUnsynchronized(member);
            RebalanceUnsynchronized(member.Group);
        }

        member.Group.Changed.Pulse();
    }

    // Takes the member out of its group and frees its partitions (no rebalance); returns how many it
    // owned. Caller holds _lock.
    private int RemoveUnsynchronized(Member member)
    {
        member.Left = true;
        member.OwnershipEpoch++;
        Group group = member.Group;
        group.Members.Remove(member);
        List<TopicPartition>? freed = null;
        foreach (KeyValuePair<TopicPartition, Member> owner in group.Owners)
        {
            if (owner.Value == member)
            {
                (freed ??= new()).Add(owner.Key);
            }
        }

        if (freed is not null)
        {
            foreach (TopicPartition tp in freed)
            {
                group.Owners.Remove(tp);
            }
        }

        if (group.Members.Count == 0)
        {
            _groups.Remove(group.Id);
        }

        return freed?.Count ?? 0;
    }

    /// <summary>
    /// Evicts the members of <paramref name="group"/> (or of every group, when null) that have not
    /// polled for longer than their max poll interval and are not waiting in a consume loop (Kafka's
    /// <c>max.poll.interval.ms</c>): their partitions go to the others, and their commits of them fail.
    /// </summary>
    public void EvictIdle(Group? group, long nowMs)
    {
        List<(Member Member, long IdleMs, int Partitions)>? evicted = null;
        lock (_lock)
        {
            if (group is not null)
            {
                EvictIdleUnsynchronized(group, nowMs, ref evicted);
            }
            else
            {
                foreach (Group g in new List<Group>(_groups.Values))
                {
                    EvictIdleUnsynchronized(g, nowMs, ref evicted);
                }
            }
        }

        if (evicted is null)
        {
            return;
        }

        // Every group woken first, then told: a throwing logger neither fails the poll that evicted (it
        // is another member's) nor leaves a later group's members asleep through their rebalance.
        foreach ((Member m, _, _) in evicted)
        {
            m.Group.Changed.Pulse();
        }

        foreach ((Member m, long idle, int partitions) in evicted)
        {
            try
            {
                _onEvicted?.Invoke(m, idle, partitions);
            }
            catch (Exception)
            {
                // The eviction took effect; only its log line is lost.
            }
        }
    }

    private void EvictIdleUnsynchronized(Group group, long nowMs, ref List<(Member, long, int)>? evicted)
    {
        group.LastEvictionCheckMs = nowMs;
        bool changed = false;
        for (int i = group.Members.Count - 1; i >= 0; i--)
        {
            Member m = group.Members[i];
            // Waiting first: a member that stops waiting records its poll time before it clears the flag,
            // so a cleared flag read here comes with that time.
            if (Volatile.Read(ref m.Waiting) != 0)
            {
                continue;
            }

            long idle = nowMs - Volatile.Read(ref m.LastPollMs);
            if (idle > m.MaxPollMs)
            {
                int partitions = RemoveUnsynchronized(m);
                (evicted ??= new()).Add((m, idle, partitions));
                changed = true;
            }
        }

        if (changed)
        {
            RebalanceUnsynchronized(group);
        }
    }

    /// <summary>
    /// A topic was created or deleted: every group with a member subscribed to it gets a new generation
    /// (its partitions counted again). Idempotent.
    /// </summary>
    public void TopicChanged(string topic)
    {
        List<Group>? changed = null;
        lock (_lock)
        {
            foreach (Group group in _groups.Values)
            {
                foreach (Member m in group.Members)
                {
                    if (Array.IndexOf(m.Topics, topic) >= 0)
                    {
                        RebalanceUnsynchronized(group);
                        (changed ??= new()).Add(group);
                        break;
                    }
                }
            }
        }

        if (changed is not null)
        {
            foreach (Group group in changed)
            {
                group.Changed.Pulse();
            }
        }
    }

    /// <summary>A copy of the member's target and the group version it belongs to.</summary>
    public (long Version, List<TopicPartition> Target) TargetOf(Member member)
    {
        lock (_lock)
        {
            return (member.Group.Version, new List<TopicPartition>(member.Target));
        }
    }

    /// <summary>
    /// Takes a partition of the member's target if nobody owns it and no open transaction carries
    /// offsets of the group on it; false otherwise (retry at a later poll).
    /// </summary>
    public bool TryClaim(Member member, TopicPartition partition)
    {
        lock (_lock)
        {
            Group group = member.Group;
            if (member.Left || !member.Target.Contains(partition) || group.Owners.ContainsKey(partition))
            {
                return false;
            }

            // Under the lock: an offset send of the previous owner (see RunIfOwner) is either in the
            // offsets log already, and seen here, or refused because the partition is no longer its.
            if (_offsets.HasUnsettledOffset(group.Id, partition))
            {
                return false;
            }

            group.Owners.Add(partition, member);
            member.OwnershipEpoch++;
            return true;
        }
    }

    /// <summary>Lets partitions go (the member stops reading them); waiting members may take them.</summary>
    public void Release(Member member, List<TopicPartition> partitions)
    {
        lock (_lock)
        {
            foreach (TopicPartition tp in partitions)
            {
                if (member.Group.Owners.TryGetValue(tp, out Member? owner) && owner == member)
                {
                    member.Group.Owners.Remove(tp);
                }
            }

            member.Group.Version++;
            member.OwnershipEpoch++;
        }

        member.Group.Changed.Pulse();
    }

    /// <summary>Records that the member looked at its assignment as of <paramref name="version"/>.</summary>
    public static void MarkSynced(Member member, long version, bool complete)
    {
        Volatile.Write(ref member.Complete, complete);
        Volatile.Write(ref member.SyncedVersion, version);
    }

    /// <summary>
    /// Runs <paramref name="action"/> while the member owns every partition in <paramref name="offsets"/>
    /// (no hand-over can happen meanwhile), or may take it (in its target, nobody owns it, no offset of
    /// it unsettled: nobody reads it, and the member's own take waits for what it writes now; so a member
    /// whose take failed, e.g. with <see cref="AutoOffsetReset.Error"/> and no committed offset, can
    /// commit a start); throws <see cref="CommitFailedException"/> otherwise.
    /// </summary>
    /// <param name="member">The committing member.</param>
    /// <param name="offsets">The offsets to commit.</param>
    /// <param name="action">Writes them.</param>
    /// <param name="ownershipEpoch">When given (from <see cref="ConsumerGroupMetadata"/>): refused as well if the member
    /// took or gave up any partition since then (its records may be from two ownerships of one partition).</param>
    public void RunIfOwner(Member member, IReadOnlyCollection<TopicPartitionOffset> offsets, Action action, long? ownershipEpoch = null)
    {
        lock (_lock)
        {
            foreach (TopicPartitionOffset o in offsets)
            {
                bool changed = ownershipEpoch is { } epoch && epoch != member.OwnershipEpoch;
                bool owns = member.Group.Owners.TryGetValue(o.TopicPartition, out Member? owner)
                    ? owner == member
                    : member.Target.Contains(o.TopicPartition) && !_offsets.HasUnsettledOffset(member.Group.Id, o.TopicPartition); // may take it: nobody reads it
                if (member.Left || changed || !owns)
                {
                    throw new CommitFailedException(member.Group.Id, member.Id, o.TopicPartition, ownershipChanged: changed && !member.Left && owns);
                }
            }

            action();
        }
    }

    // New generation: every member's target by the range assignor. Caller holds _lock.
    private void RebalanceUnsynchronized(Group group)
    {
        group.Generation++;
        group.Version++;
        var topics = new SortedSet<string>(StringComparer.Ordinal);
        foreach (Member m in group.Members)
        {
            m.Target.Clear();
            m.Generation = group.Generation;
            topics.UnionWith(m.Topics);
        }

        var subscribed = new List<Member>();
        foreach (string topic in topics)
        {
            if (_partitionCount(topic) is not int count)
            {
                continue; // deleted meanwhile: nothing to assign
            }

            subscribed.Clear();
            foreach (Member m in group.Members)
            {
                if (Array.IndexOf(m.Topics, topic) >= 0)
                {
                    subscribed.Add(m);
                }
            }

            int each = count / subscribed.Count, extra = count % subscribed.Count;
            for (int i = 0; i < subscribed.Count; i++)
            {
                int first = (i * each) + Math.Min(i, extra);
                int length = each + (i < extra ? 1 : 0);
                for (int p = first; p < first + length; p++)
                {
                    subscribed[i].Target.Add(new TopicPartition(topic, p));
                }
            }
        }
    }
}
