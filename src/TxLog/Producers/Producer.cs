using TxLog.Coordination;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Producers;

/// <summary>Settings of a <see cref="Producer"/>.</summary>
public sealed class ProducerOptions
{
    /// <summary>
    /// Makes the producer transactional: <see cref="Producer.InitTransactionsAsync"/> fences older
    /// producers with the same id and every record is written inside a transaction. Null: an
    /// idempotent producer (duplicates of its last five batches per partition are detected).
    /// </summary>
    public string? TransactionalId { get; set; }

    /// <summary>
    /// How long a transaction may stay open before the coordinator aborts it and fences the producer. Default 60 s.
    /// Measured on the monotonic clock of <see cref="LogStoreOptions.TimeProvider"/>, so a step of the wall clock
    /// neither aborts a young transaction nor spares an old one.
    /// </summary>
    public TimeSpan TransactionTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Chooses partitions for <see cref="Producer.ProduceAsync(string, Message, CancellationToken)"/>. Default: Kafka's murmur2 partitioner.</summary>
    public IPartitioner Partitioner { get; set; } = new DefaultPartitioner();
}

/// <summary>Where a produced batch went.</summary>
/// <param name="TopicPartition">The partition.</param>
/// <param name="Offset">Offset of the first record.</param>
/// <param name="LastOffset">Offset of the last record.</param>
/// <param name="IsDuplicate">True when the batch was a retry acknowledged with its original offsets.</param>
public readonly record struct DeliveryResult(TopicPartition TopicPartition, long Offset, long LastOffset, bool IsDuplicate);

/// <summary>
/// An idempotent or transactional producer, named and shaped like Kafka's. Every batch carries the
/// producer id, epoch and a per-partition sequence number, so each partition rejects gaps and
/// acknowledges retries of its last five batches without writing them again.
/// <para>
/// Transactional use: <see cref="InitTransactionsAsync"/> once, then any number of
/// <see cref="BeginTransaction"/> … <see cref="ProduceAsync(TopicPartition, Message, CancellationToken)"/> /
/// <see cref="SendOffsetsToTransactionAsync(IEnumerable{TopicPartitionOffset}, ConsumerGroupMetadata, CancellationToken)"/> … <see cref="CommitTransactionAsync"/> or
/// <see cref="AbortTransactionAsync"/>. Records written inside a transaction are acknowledged when
/// written (not yet durable or visible to read-committed readers); <see cref="CommitTransactionAsync"/>
/// completes at the durability point of the whole transaction.
/// </para>
/// <para>
/// A topic deleted and created again has new partitions under the old names: the producer starts its
/// sequence there again at 0 (its other partitions keep theirs), and a produce to a deleted topic
/// fails with <see cref="TopicNotFoundException"/>.
/// </para>
/// Thread-safe: calls are serialised per producer. Misuse (produce outside a transaction, commit
/// without begin, begin twice, use after dispose) throws and changes nothing.
/// </summary>
public sealed class Producer : IDisposable, IAsyncDisposable
{
    private readonly LogStore _store;
    private readonly ProducerOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);   // serialises operations, including async commits
    private readonly Dictionary<TopicPartition, PartitionSequence> _sequences = new();
    private readonly HashSet<TopicPartition> _transactionPartitions = new();
    private long _producerId = -1;
    private short _epoch = -1;
    private ProducerState _state;
    private Exception? _fatal;

    private enum ProducerState
    {
        Uninitialized,
        Ready,
        InTransaction,
        Fatal,
        Disposed,
    }

    /// <summary>The store that created the producer.</summary>
    internal LogStore Store => _store;

    internal Producer(LogStore store, ProducerOptions options)
    {
        _store = store;
        _options = options;
        _state = options.TransactionalId is null ? ProducerState.Ready : ProducerState.Uninitialized;
    }

    internal async ValueTask InitializeIdempotentAsync()
    {
        _producerId = await _store.Coordinator.AllocateProducerIdAsync().ConfigureAwait(false);
        _epoch = 0;
    }

    /// <summary>The producer id (-1 before initialisation).</summary>
    public long ProducerId => _producerId;

    /// <summary>The producer epoch (-1 before initialisation).</summary>
    public short Epoch => _epoch;

    /// <summary>The transactional id, or null for an idempotent producer.</summary>
    public string? TransactionalId => _options.TransactionalId;

    /// <summary>True between <see cref="BeginTransaction"/> and the end of the commit or abort.</summary>
    public bool InTransaction => _state == ProducerState.InTransaction;

    /// <summary>
    /// Registers the transactional id with the coordinator: gets the producer id and a bumped epoch,
    /// aborting a transaction the previous epoch left open. Producers with an older epoch are fenced.
    /// </summary>
    public async Task InitTransactionsAsync(CancellationToken cancellationToken = default)
    {
        string id = _options.TransactionalId ?? throw new InvalidTransactionStateException("InitTransactions needs ProducerOptions.TransactionalId.");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfUnusable();
            if (_state != ProducerState.Uninitialized)
            {
                throw new InvalidTransactionStateException("InitTransactions was already called on this producer.");
            }

            (_producerId, _epoch) = await _store.Coordinator.InitTransactionsAsync(id, _options.TransactionTimeout).ConfigureAwait(false);
            _sequences.Clear();
            _state = ProducerState.Ready;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Starts a transaction (local: the coordinator learns of it with the first write).</summary>
    public void BeginTransaction() => BeginTransactionInternal();

    /// <summary>
    /// <see cref="BeginTransaction"/>, returning the new transaction's generation (a count of this
    /// producer's transactions): a unified transaction passes it back to act only on its own transaction,
    /// never on one that another caller of this producer started after committing or aborting it.
    /// </summary>
    internal long BeginTransactionInternal()
    {
        _gate.Wait();
        try
        {
            ThrowIfUnusable();
            if (_options.TransactionalId is null)
            {
                throw new InvalidTransactionStateException("BeginTransaction needs a transactional producer (ProducerOptions.TransactionalId).");
            }

            if (_state == ProducerState.Uninitialized)
            {
                throw new InvalidTransactionStateException("Call InitTransactionsAsync before BeginTransaction.");
            }

            if (_state == ProducerState.InTransaction)
            {
                throw new InvalidTransactionStateException("A transaction is already open; commit or abort it first.");
            }

            _transactionPartitions.Clear();
            _state = ProducerState.InTransaction;
            return ++_generation;
        }
        finally
        {
            _gate.Release();
        }
    }

    private long _generation; // transactions begun; guarded by _gate

    /// <summary>Produces one record to a partition chosen by the partitioner (murmur2 of the key; round-robin without a key).</summary>
    /// <exception cref="TopicNotFoundException">
    /// The topic does not exist, or was deleted during the call (also when it was created again meanwhile:
    /// the partition was chosen for the deleted topic; call again to partition for the new one).
    /// </exception>
    public ValueTask<DeliveryResult> ProduceAsync(string topic, Message message, CancellationToken cancellationToken = default)
    {
        // The count and the partition objects from one lookup: if the topic is deleted (and perhaps created
        // again with fewer partitions) while the partitioner chooses, the write goes to the deleted
        // partition and fails with TopicNotFoundException, as a write to a partition looked up before a
        // deletion does; a second lookup by number could find no such partition any more.
        LogPartition[] partitions = _store.GetPartitions(topic);
        int count = partitions.Length;
        ReadOnlySpan<byte> key = message.Key.HasValue ? message.Key.GetValueOrDefault().Span : default;
        int partition = _options.Partitioner.Partition(topic, key, message.Key.HasValue, count);
        if ((uint)partition >= (uint)count)
        {
            throw new InvalidOperationException($"The partitioner returned partition {partition} for topic '{topic}' with {count} partitions.");
        }

        return ProduceCoreAsync(new TopicPartition(topic, partition), partitions[partition], new RecordSource(message), cancellationToken);
    }

    /// <summary>Produces one record to a partition.</summary>
    /// <exception cref="TopicNotFoundException">The topic does not exist (or was deleted during the call).</exception>
    public ValueTask<DeliveryResult> ProduceAsync(TopicPartition partition, Message message, CancellationToken cancellationToken = default) =>
        ProduceCoreAsync(partition, null, new RecordSource(message), cancellationToken);

    /// <summary>
    /// Produces the records as one batch to a partition. Outside a transaction it completes as the
    /// store's durability mode acknowledges; inside one, as soon as the batch is written.
    /// </summary>
    /// <exception cref="TopicNotFoundException">The topic does not exist (or was deleted during the call).</exception>
    public ValueTask<DeliveryResult> ProduceAsync(TopicPartition partition, IReadOnlyList<Message> messages, CancellationToken cancellationToken = default)
    {
        // Argument errors surface through the returned task, as from the async method this used to be.
        if (messages is null)
        {
            return ValueTask.FromException<DeliveryResult>(new ArgumentNullException(nameof(messages)));
        }

        if (messages.Count == 0)
        {
            return ValueTask.FromException<DeliveryResult>(new ArgumentException("At least one record is needed.", nameof(messages)));
        }

        return ProduceCoreAsync(partition, null, new RecordSource(messages), cancellationToken);
    }

    // One record or a list, without wrapping a single record in a list (no allocation per record).
    private readonly struct RecordSource
    {
        private readonly Message _single;
        private readonly IReadOnlyList<Message>? _list;

        public RecordSource(in Message single) => _single = single;

        public RecordSource(IReadOnlyList<Message> list) => _list = list;

        public int Count => _list?.Count ?? 1;

        public Message this[int index] => _list is null ? _single : _list[index];
    }

    // target: the partition object when the caller already looked it up (null: look it up by name).
    private async ValueTask<DeliveryResult> ProduceCoreAsync(TopicPartition partition, LogPartition? target, RecordSource messages, CancellationToken cancellationToken)
    {
        if (LogStore.IsInternalTopic(partition.Topic))
        {
            throw new ArgumentException($"'{partition.Topic}' is an internal topic of the store; producers cannot write to it.", nameof(partition));
        }

        target ??= _store.GetPartition(partition.Topic, partition.Partition);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        DeliveryResult result;
        try
        {
            ThrowIfUnusable();
            bool transactional = _options.TransactionalId is not null;
            if (transactional && _state != ProducerState.InTransaction)
            {
                throw new InvalidTransactionStateException(_state == ProducerState.Uninitialized
                    ? "Call InitTransactionsAsync and BeginTransaction before producing with a transactional producer."
                    : "A transactional producer can only produce inside a transaction: call BeginTransaction first.");
            }

            result = AppendUnsynchronized(target, partition, messages, transactional);
        }
        finally
        {
            _gate.Release();
        }

        if (_options.TransactionalId is null && _store.Options.Durability == DurabilityMode.GroupCommit && !result.IsDuplicate)
        {
            // A topic deleted after the batch was written: its log is closed and its data gone.
            await target.WaitForDurableOrTopicGoneAsync(result.LastOffset).ConfigureAwait(false);
        }

        return result;
    }

    private DeliveryResult AppendUnsynchronized(LogPartition target, TopicPartition partition, RecordSource messages, bool transactional)
    {
        RecordBatchBuilder builder = _store.RentBuilder();
        try
        {
            StartBatchUnsynchronized(target, partition, builder, transactional);
            long now = _store.NowMs();
            for (int i = 0; i < messages.Count; i++)
            {
                Message message = messages[i];
                builder.Add(in message, now);
            }

            return AppendBuiltUnsynchronized(target, partition, builder, transactional);
        }
        finally
        {
            _store.ReturnBuilder(builder);
        }
    }

    // Joins the partition to the open transaction (first write there) and starts a batch with this
    // producer's id, epoch and next sequence for the partition.
    private void StartBatchUnsynchronized(LogPartition target, TopicPartition partition, RecordBatchBuilder builder, bool transactional)
    {
        if (transactional && !_transactionPartitions.Contains(partition))
        {
            try
            {
                _store.Coordinator.AddPartition(_options.TransactionalId!, _producerId, _epoch, partition, target);
            }
            catch (ProducerFencedException e)
            {
                MarkFenced(e);
                throw;
            }

            _transactionPartitions.Add(partition);
        }

        builder.Reset(transactional ? RecordBatchLayout.TransactionalFlag : (short)0, _producerId, _epoch, NextSequenceUnsynchronized(partition, target));
    }

    // The next sequence of a partition, per incarnation of the partition. A topic deleted and created
    // again has new partitions under the old names, with no state for this producer (Kafka: the broker
    // lost the producer's state); they start again at 0, as a modern Kafka client resets the sequence.
    // Nothing is resent under an old sequence: a batch gets its sequence when it is built and is never
    // retried by the producer, so every batch sent to the new incarnation is a new one.
    private int NextSequenceUnsynchronized(TopicPartition partition, LogPartition target) =>
        _sequences.TryGetValue(partition, out PartitionSequence known) && known.Incarnation == target.Incarnation ? known.Next : 0;

    // The next sequence for one incarnation of a partition (see NextSequenceUnsynchronized).
    private readonly record struct PartitionSequence(long Incarnation, int Next);

    // Appends a batch started by StartBatchUnsynchronized and advances the partition's sequence.
    private DeliveryResult AppendBuiltUnsynchronized(LogPartition target, TopicPartition partition, RecordBatchBuilder builder, bool transactional)
    {
        int sequence = NextSequenceUnsynchronized(partition, target);
        var header = new ProducerBatchHeader(_producerId, _epoch, sequence, builder.Count - 1, transactional, false, ControlRecordType.Commit, -1, builder.MaxTimestamp);
        AppendResult appended;
        try
        {
            appended = target.AppendProducerBatch(builder, header)!.Value;
        }
        catch (ProducerFencedException e)
        {
            MarkFenced(e);
            throw;
        }

        _sequences[partition] = new PartitionSequence(target.Incarnation, ProducerStateEntry.AddSequence(sequence, builder.Count));
        if (transactional)
        {
            _store.Coordinator.RecordWrite(_options.TransactionalId!, _producerId, _epoch, partition, appended.LastOffset);
        }

        return new DeliveryResult(partition, appended.BaseOffset, appended.LastOffset, appended.IsDuplicate);
    }

    /// <summary>
    /// Tests only: "unified:gate" just before a unified commit waits for this producer's gate,
    /// "unified:prepared" once its redo is written (the gate held) and before its decision.
    /// </summary>
    internal Action<string>? StepHook { get; set; }

    /// <summary>
    /// Commits the log side of a unified transaction in one hold of the gate: checks that the open
    /// transaction is still the unified transaction's own (<paramref name="generation"/>), runs
    /// <paramref name="prepare"/> (the engine validates, takes its commit timestamp and appends its redo
    /// through the target it is given, as batches of this transaction on <paramref name="redoPartition"/>),
    /// then commits; <paramref name="onVisible"/> runs when the records become visible.
    /// </summary>
    /// <remarks>
    /// Lock order: the gate is taken before the engine's commit lock (which <paramref name="prepare"/>
    /// takes), never under it. Ending a transaction holds the gate while the coordinator releases
    /// visibility holds, and a release runs the map side of the unified transactions it makes visible,
    /// which takes the commit lock: a unified commit that waited for the gate under the commit lock
    /// closed a cycle with another caller ending this producer's transaction (UnifiedLockOrderTests).
    /// Holding the gate from the redo to the decision also keeps another caller from committing or
    /// aborting the transaction in between, so the redo is always decided by this commit.
    /// </remarks>
    internal async Task CommitUnifiedAsync(long generation, LogPartition redo, TopicPartition redoPartition, Action<Mvcc.IRedoTarget> prepare, Action onVisible, CancellationToken cancellationToken)
    {
        StepHook?.Invoke("unified:gate");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfNotInTransactionUnsynchronized(generation);
            prepare(new RedoTarget(this, redo, redoPartition, generation));
            StepHook?.Invoke("unified:prepared");
            await EndTransactionUnsynchronizedAsync(commit: true, onVisible, unified: true).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    // The redo target of a unified commit: the engine's redo batches become batches of this producer's
    // open transaction. Used only inside CommitUnifiedAsync, which holds the gate throughout (the target
    // never takes it: the engine calls it under its commit lock).
    private sealed class RedoTarget(Producer producer, LogPartition target, TopicPartition partition, long generation) : Mvcc.IRedoTarget
    {
        public void StartBatch(RecordBatchBuilder builder)
        {
            producer.ThrowIfNotInTransactionUnsynchronized(generation);
            producer.StartBatchUnsynchronized(target, partition, builder, transactional: true);
        }

        public AppendResult AppendBatch(RecordBatchBuilder builder)
        {
            producer.ThrowIfNotInTransactionUnsynchronized(generation);
            DeliveryResult result = producer.AppendBuiltUnsynchronized(target, partition, builder, transactional: true);
            return new AppendResult(result.Offset, result.LastOffset);
        }
    }

    // The producer's open transaction must still be the unified transaction's own: not ended by another
    // caller (and perhaps followed by a new one). Caller holds the gate.
    private void ThrowIfNotInTransactionUnsynchronized(long generation)
    {
        ThrowIfUnusable();
        if (_options.TransactionalId is null || _state != ProducerState.InTransaction || generation != _generation)
        {
            throw StaleGeneration();
        }
    }

    private static InvalidTransactionStateException StaleGeneration() =>
        new("The producer's transaction was committed or aborted by another caller while this unified transaction was still open; a producer serves one unified transaction at a time.");

    /// <summary>
    /// Adds consumer offsets to the open transaction (Kafka's sendOffsetsToTransaction): the group's
    /// committed offsets change if and only if the transaction commits. Not fenced against a rebalance:
    /// for a consumer that subscribed as a group member, pass its <see cref="Consumer.GroupMetadata"/>.
    /// </summary>
    public ValueTask SendOffsetsToTransactionAsync(IEnumerable<TopicPartitionOffset> offsets, string groupId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(groupId);
        return SendOffsetsCoreAsync(offsets, groupId, null, 0, null, cancellationToken);
    }

    /// <summary>
    /// Adds consumer offsets of a consumer's group to the open transaction, fenced as Kafka's
    /// <c>sendOffsetsToTransaction(offsets, groupMetadata)</c>: when the consumer is a subscribed group
    /// member, the send is refused unless it still owns every partition of the offsets. The group's
    /// committed offsets change if and only if the transaction commits; a member that takes one of these
    /// partitions over meanwhile waits for the transaction's outcome before it starts reading. Take the
    /// metadata as <see cref="ConsumerGroupMetadata"/> says (right after the batch's one poll).
    /// </summary>
    /// <exception cref="CommitFailedException">The member does not own one of the partitions, or took or gave up a partition since the metadata was taken (the group was rebalanced, or the member evicted): nothing was added; abort the transaction and seek back to the committed offsets.</exception>
    public ValueTask SendOffsetsToTransactionAsync(IEnumerable<TopicPartitionOffset> offsets, ConsumerGroupMetadata groupMetadata, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(groupMetadata);
        if (groupMetadata.Member is { } member && member.Membership != _store.Membership)
        {
            throw new ArgumentException("The group metadata is of a consumer of another store.", nameof(groupMetadata));
        }

        return SendOffsetsCoreAsync(offsets, groupMetadata.GroupId, groupMetadata.Member, groupMetadata.OwnershipEpoch, groupMetadata.Partitions, cancellationToken);
    }

    private async ValueTask SendOffsetsCoreAsync(IEnumerable<TopicPartitionOffset> offsets, string groupId, ConsumerGroupMembership.Member? member, long ownershipEpoch, LogPartition[]? read, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(offsets);
        var list = new List<TopicPartitionOffset>(offsets);
        if (list.Count == 0)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfUnusable();
            if (_options.TransactionalId is null || _state != ProducerState.InTransaction)
            {
                throw new InvalidTransactionStateException("SendOffsetsToTransaction needs an open transaction of a transactional producer.");
            }

            GroupCoordinator groups = _store.Groups;
            Message[] messages = GroupCoordinator.ToMessages(groupId, list, _store.NowMs());
            void Append()
            {
                // Refused under the offsets partition's append lock if a partition read has a topic being
                // deleted (see GroupCoordinator.FindRetired; Consumer.Commit refuses such offsets too).
                lock (groups.Partition.AppendLock)
                {
                    if (GroupCoordinator.FindRetired(list, read) is { } retired)
                    {
                        throw member is null
                            ? new TopicNotFoundException(retired.Topic)
                            : CommitFailedException.TopicDeleted(groupId, member.Id, retired);
                    }

                    AppendUnsynchronized(groups.Partition, new TopicPartition(GroupCoordinator.TopicName, 0), new RecordSource(messages), transactional: true);
                }
            }

            if (member is null)
            {
                Append();
            }
            else
            {
                // Checked and written in one step: the partitions cannot change owner in between, and a
                // member taking one over later finds these offsets pending and waits for the outcome.
                member.Membership.RunIfOwner(member, list, Append, ownershipEpoch);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Commits the open transaction: completes once every record of it and the decision are durable
    /// (in <see cref="DurabilityMode.GroupCommit"/>); read-committed readers on every partition see it
    /// shortly after. Fails with <see cref="TransactionTimedOutException"/> if the coordinator already
    /// aborted it on timeout, never reporting success for an aborted transaction.
    /// </summary>
    public Task CommitTransactionAsync(CancellationToken cancellationToken = default) => EndTransactionAsync(commit: true, cancellationToken);

    /// <summary>Abort of the log side of a unified transaction (counted by <see cref="StoreTransaction"/>).</summary>
    internal Task AbortUnifiedTransactionAsync(long generation, CancellationToken cancellationToken) => EndTransactionAsync(commit: false, cancellationToken, generation: generation);

    /// <summary>Aborts the open transaction: its records are skipped by read-committed readers.</summary>
    public Task AbortTransactionAsync(CancellationToken cancellationToken = default) => EndTransactionAsync(commit: false, cancellationToken);

    // generation (unified transactions only, else 0): act only if the open transaction is still that
    // one. An abort of an ended one has nothing left to do.
    private async Task EndTransactionAsync(bool commit, CancellationToken cancellationToken, long generation = 0)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ThrowIfUnusable();
            if (generation != 0 && generation != _generation)
            {
                return;
            }

            await EndTransactionUnsynchronizedAsync(commit, onVisible: null, unified: generation != 0).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    // Caller holds the gate.
    private async Task EndTransactionUnsynchronizedAsync(bool commit, Action? onVisible, bool unified)
    {
        if (_state != ProducerState.InTransaction)
        {
            throw new InvalidTransactionStateException(commit ? "CommitTransaction without an open transaction: call BeginTransaction first." : "AbortTransaction without an open transaction.");
        }

        try
        {
            await _store.Coordinator.EndTransactionAsync(_options.TransactionalId!, _producerId, _epoch, commit, onVisible, unified).ConfigureAwait(false);
        }
        catch (ProducerFencedException e)
        {
            _fatal = e;
            _state = ProducerState.Fatal;
            throw;
        }

        _transactionPartitions.Clear();
        _state = ProducerState.Ready;
    }

    // A fenced producer is finished: every later call reports the fencing.
    private void MarkFenced(ProducerFencedException e)
    {
        _fatal = e;
        _state = ProducerState.Fatal;
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_state == ProducerState.Disposed, this);
        if (_state == ProducerState.Fatal)
        {
            throw _fatal is ProducerFencedException fenced
                ? new ProducerFencedException(fenced.ProducerId, fenced.Epoch, fenced.CurrentEpoch)
                : new InvalidTransactionStateException("The producer failed and cannot be used.");
        }
    }

    /// <summary>Aborts an open transaction (best effort) and releases the producer.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_state == ProducerState.InTransaction)
        {
            try
            {
                await AbortTransactionAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is TxLogException or ObjectDisposedException)
            {
                // The coordinator's timeout or the next open aborts it instead.
            }
        }

        _state = ProducerState.Disposed;
    }

    /// <summary>Aborts an open transaction (best effort) and releases the producer.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
