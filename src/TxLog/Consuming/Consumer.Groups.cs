namespace TxLog.Consuming;

// The consumer-group side of Consumer: subscribing as a member of a group, following its rebalances
// (give up, take over, evictions), the rebalance callbacks, fenced group metadata and the seek back to
// stable committed offsets. See ConsumerGroupMembership for the group's side.
public sealed partial class Consumer
{
    /// <summary>
    /// Subscribes to the topics (replacing an earlier subscription or assignment). Without a
    /// <see cref="ConsumerOptions.GroupId"/> the consumer reads every partition of the topics at once.
    /// With one it joins its group: the group's members share the partitions, and this consumer takes
    /// those given to it as their previous owners let them go (at once when nobody had them; otherwise
    /// at a later poll). Partitions are counted at each rebalance.
    /// </summary>
    /// <exception cref="TopicNotFoundException">A topic does not exist.</exception>
    /// <exception cref="OffsetOutOfRangeException">With <see cref="AutoOffsetReset.Error"/>: as for <see cref="Assign"/> (including <see cref="NoOffsetForPartitionException"/>); for a group member also from a later poll that takes a partition (the partition is then left for a later poll).</exception>
    public void Subscribe(params IEnumerable<string> topics)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ThrowIfInCallback();
        ArgumentNullException.ThrowIfNull(topics);
        var names = new List<string>();
        var partitions = new List<TopicPartition>();
        foreach (string topic in topics)
        {
            int count = _store.PartitionCount(topic);
            if (names.Contains(topic))
            {
                continue;
            }

            names.Add(topic);
            for (int p = 0; p < count; p++)
            {
                partitions.Add(new TopicPartition(topic, p));
            }
        }

        if (_options.GroupId is not { } group)
        {
            Assign(partitions); // replaces the assignment only if it succeeds
            return;
        }

        Unsubscribe();
        _member = Join(group, names);
        SyncGroup();
    }

    /// <summary>
    /// Leaves the group (after <see cref="ConsumerOptions.PartitionsRevoked"/> for the partitions it
    /// owns; the other members then share them) and drops the assignment, or only drops the assignment
    /// when the consumer is not a group member.
    /// </summary>
    public void Unsubscribe()
    {
        if (_member is not { } member)
        {
            DropAssignment();
            return;
        }

        if (member.Left)
        {
            // Evicted: its partitions are the other members' already (no callback: it cannot commit them).
            DropAssignment();
            _member = null;
            return;
        }

        try
        {
            var owned = new List<TopicPartition>(_assignments.Count);
            foreach (PartitionAssignment a in _assignments)
            {
                owned.Add(a.TopicPartition);
            }

            Revoke(owned);
        }
        finally
        {
            DropAssignment();
            _member = null;
            member.Membership.Leave(member);
        }
    }

    private ConsumerGroupMembership.Member Join(string group, IReadOnlyCollection<string> topics) =>
        _store.Membership.Join(group, topics, _options.MaxPollInterval == Timeout.InfiniteTimeSpan ? long.MaxValue : (long)_options.MaxPollInterval.TotalMilliseconds, _store.MonotonicMs());

    // A member's part of each poll: rejoin after an eviction, record the poll, look for idle members (at
    // most once a second per group), and follow the group's changes.
    private void PollGroup(ConsumerGroupMembership.Member member)
    {
        long now = _store.MonotonicMs();
        if (member.Left)
        {
            // Evicted (it did not poll in time): the others own its partitions now. Lost, not revoked:
            // it may not commit them any more, so no callback; then it joins again.
            DropAssignment();
            member = _member = Join(member.Group.Id, member.Topics);
        }

        Volatile.Write(ref member.LastPollMs, now);
        if (now - Volatile.Read(ref member.Group.LastEvictionCheckMs) >= 1000)
        {
            member.Membership.EvictIdle(member.Group, now);
        }

        if (member.NeedsSync)
        {
            SyncGroup();
        }
    }

    /// <summary>The consumer's group and, when subscribed, its member id and generation: pass it with offsets sent to a transaction.</summary>
    /// <exception cref="InvalidOperationException">The consumer has no <see cref="ConsumerOptions.GroupId"/>.</exception>
    public ConsumerGroupMetadata GroupMetadata
    {
        get
        {
            string group = _options.GroupId ?? throw new InvalidOperationException("Group metadata needs ConsumerOptions.GroupId.");
            return new(group, _member, AssignedPartitions());
        }
    }

    // The member's side of a rebalance: gives up partitions no longer in its target (after the revoke
    // callback, so it can still commit them), then takes the partitions of its target that nobody owns
    // and no unfinished transaction carries offsets of. Called at each poll while the group changed or
    // the target is not all taken.
    private void SyncGroup()
    {
        ConsumerGroupMembership.Member member = _member!;
        (long version, List<TopicPartition> target) = member.Membership.TargetOf(member);
        List<TopicPartition>? revoked = null;
        List<TopicPartition>? lost = null;
        foreach (PartitionAssignment a in _assignments)
        {
            if (a.Partition.Deleted)
            {
                (lost ??= new()).Add(a.TopicPartition); // its topic was deleted (perhaps created again)
            }
            else if (!target.Contains(a.TopicPartition))
            {
                (revoked ??= new()).Add(a.TopicPartition);
            }
        }

        if (lost is not null)
        {
            // Gone with their offsets: no revoke callback (it could not commit them), just let them go.
            DropAssignments(lost);
        }

        if (revoked is not null)
        {
            Revoke(revoked);
        }

        List<TopicPartition>? taken = null;
        bool complete = false;
        try
        {
            complete = true;
            foreach (TopicPartition tp in target)
            {
                if (TryFind(tp) is not null)
                {
                    continue;
                }

                if (!member.Membership.TryClaim(member, tp))
                {
                    complete = false;
                    continue;
                }

                if (!_store.TryGetPartitionInternal(tp, out LogPartition? partition))
                {
                    // Its topic was deleted (or created again with fewer partitions) after the group counted
                    // it, and the group has not been told yet (DeleteTopic does so once the topic is gone):
                    // not taken, and the group counts again now, as for a deleted partition at Consume.
                    complete = false;
                    member.Membership.Release(member, [tp]);
                    member.Membership.TopicChanged(tp.Topic);
                    continue;
                }

                try
                {
                    _assignments.Add(new PartitionAssignment(tp, partition!, StartOffset(tp, partition!)));
                }
                catch
                {
                    complete = false;
                    member.Membership.Release(member, [tp]);
                    throw;
                }

                (taken ??= new()).Add(tp);
                _taken++;
            }
        }
        finally
        {
            ConsumerGroupMembership.MarkSynced(member, version, complete);
            if (taken is not null)
            {
                InvokeCallback(_options.PartitionsAssigned, taken);
            }
        }
    }

    // Revokes: the callback (the consumer still owns the partitions), then their readers closed and
    // their ownership released, also when the callback throws.
    private void Revoke(List<TopicPartition> partitions)
    {
        if (partitions.Count == 0)
        {
            return;
        }

        try
        {
            if (!_inCallback)
            {
                // (Skipped when the callback itself unsubscribes or disposes: no second call for the same partitions.)
                InvokeCallback(_options.PartitionsRevoked, partitions);
            }
        }
        finally
        {
            DropAssignments(partitions);
        }
    }

    private void InvokeCallback(Action<Consumer, IReadOnlyList<TopicPartition>>? callback, List<TopicPartition> partitions)
    {
        if (callback is null)
        {
            return;
        }

        _inCallback = true;
        try
        {
            callback(this, partitions);
        }
        finally
        {
            _inCallback = false;
        }
    }

    // Polling, subscribing or assigning from inside a rebalance callback would re-enter the rebalance.
    private void ThrowIfInCallback()
    {
        if (_inCallback)
        {
            throw new InvalidOperationException("Not allowed inside PartitionsRevoked or PartitionsAssigned (commit, seek, Unsubscribe or Dispose are).");
        }
    }

    // Closes the readers of these partitions, removes them and releases their ownership.
    private void DropAssignments(List<TopicPartition> partitions)
    {
        for (int i = _assignments.Count - 1; i >= 0; i--)
        {
            if (partitions.Contains(_assignments[i].TopicPartition))
            {
                _assignments[i].Dispose();
                _assignments.RemoveAt(i);
            }
        }

        _next = 0;
        if (_member is { } member)
        {
            member.Membership.Release(member, partitions); // (after a leave, its partitions are free already)
        }
    }

    /// <summary>
    /// Moves every assigned partition to the group's committed offset (or, without one, where
    /// <see cref="ConsumerOptions.AutoOffsetReset"/> says), after waiting until no offset of the group on
    /// these partitions is unsettled (sent to a transaction that has not ended or is not visible yet, or a
    /// plain commit not yet acknowledged), as Kafka's read-committed consumer fetches only stable offsets.
    /// The step after aborting a consume → process → produce transaction (for example after a
    /// <see cref="CommitFailedException"/>): the positions had moved past the aborted batch, and the
    /// previous transaction's offsets may not be in effect yet when its commit returns.
    /// </summary>
    /// <remarks>A partition without a committed offset goes where <see cref="ConsumerOptions.AutoOffsetReset"/> says:
    /// with <see cref="AutoOffsetReset.Latest"/> that is the end, past the aborted batch, so exactly-once
    /// pipelines use <see cref="AutoOffsetReset.Earliest"/> (the default). While it waits, a group member
    /// counts as polling (it is not evicted as idle).</remarks>
    /// <exception cref="InvalidOperationException">The consumer has no <see cref="ConsumerOptions.GroupId"/>.</exception>
    /// <exception cref="OperationCanceledException">Cancelled while waiting (a transaction holding offsets of these partitions stays open).</exception>
    /// <exception cref="ObjectDisposedException">The consumer or the store is disposed, also while waiting.</exception>
    /// <exception cref="OffsetOutOfRangeException">With <see cref="AutoOffsetReset.Error"/>: as for <see cref="Assign"/>; the positions are not changed.</exception>
    public async Task SeekToCommittedAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string group = _options.GroupId ?? throw new InvalidOperationException("Committed offsets need ConsumerOptions.GroupId.");
        while (true)
        {
            Task settled = _store.Groups.Partition.Signal.WaitTask; // before the look: no wake-up lost
            _store.ThrowIfDisposed(); // after taking it: a close from now on completes Closing below
            bool unsettled = false;
            foreach (PartitionAssignment a in _assignments)
            {
                if (_store.Groups.HasUnsettledOffset(group, a.TopicPartition))
                {
                    unsettled = true;
                    break;
                }
            }

            if (!unsettled)
            {
                break;
            }

            // A closed store pulses nothing any more (a transaction left open would keep this waiting for ever).
            await WaitWhilePollingAsync(Task.WhenAny(settled, _store.Closing).WaitAsync(cancellationToken), _member).ConfigureAwait(false);
            ObjectDisposedException.ThrowIf(_disposed, this);
        }

        var starts = new long[_assignments.Count];
        for (int i = 0; i < starts.Length; i++)
        {
            starts[i] = StartOffset(_assignments[i].TopicPartition, _assignments[i].Partition);
        }

        for (int i = 0; i < starts.Length; i++)
        {
            _assignments[i].Position = starts[i];
            _assignments[i].CloseReader();
        }
    }

    // Awaits while the member counts as polling: a member waiting in its consume loop (or for stable
    // offsets) is never evicted as idle. The end of the wait is its last poll, recorded before it stops
    // counting as waiting, or an eviction check in between (another member's poll, woken by the same
    // pulse) would find it idle since before the wait.
    private async Task WaitWhilePollingAsync(Task wait, ConsumerGroupMembership.Member? member)
    {
        if (member is not null)
        {
            Volatile.Write(ref member.Waiting, 1);
        }

        try
        {
            await wait.ConfigureAwait(false);
        }
        finally
        {
            if (member is not null)
            {
                Volatile.Write(ref member.LastPollMs, _store.MonotonicMs());
                Volatile.Write(ref member.Waiting, 0);
            }
        }
    }
}
