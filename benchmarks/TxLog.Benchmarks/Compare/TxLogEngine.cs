using System.Runtime.CompilerServices;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// TxLog under the comparison workloads: a store with the default settings (GroupCommit durability,
/// 1 GiB segments) and one single-partition topic. W1 and the W4 load go through a
/// <see cref="LogAppender"/> (records packed into 64 KiB batches, like a Kafka producer's batch.size),
/// W2 through <see cref="LogPartition.AppendAsync(Message, CancellationToken)"/> (one batch per record,
/// group commit), W4 through a <see cref="LogReader"/> (CRC checked per batch). The W3 log-only form uses
/// Kafka-style transactions: one transactional producer per writer (id <c>w3-writer-{id}</c>) over the three
/// outbox topics (one partition each); each transaction is BeginTransaction, one ProduceAsync per topic and
/// CommitTransactionAsync, which completes once the data and the decision are fsynced. The full W3 needs the
/// MVCC maps of a later issue and is skipped for now. <c>kv-put</c> runs on the MVCC engine (<see cref="TxLogKvStore"/>).
/// The TxLog-only workloads live in <see cref="TxLogWorkloads"/> and <see cref="MvccWorkloads"/>.
/// </summary>
public sealed class TxLogEngine : IEngine, IKvEngine
{
    private static readonly string[] KvVariants = [.. TxLogKvStore.Variants.Select(v => v.Variant)];

    private const string FullOutboxSkip = "full W3 needs TxLog's MVCC maps (a later issue); see outbox_log for the log-only form.";

    /// <inheritdoc/>
    public string Name => "txlog";

    /// <inheritdoc/>
    public ValueTask<IEngineStore> OpenAsync(string directory, Workload workload)
    {
        if (workload == Workload.Outbox)
        {
            throw new NotSupportedException(FullOutboxSkip);
        }

        var store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        try
        {
            if (!store.TopicExists("bench"))
            {
                store.CreateTopic("bench");
            }

            if (workload == Workload.OutboxLog)
            {
                foreach (string topic in OutboxTransaction.Topics)
                {
                    if (!store.TopicExists(topic))
                    {
                        store.CreateTopic(topic, 1);
                    }
                }
            }
        }
        catch
        {
            store.Dispose();
            throw;
        }

        return new ValueTask<IEngineStore>(new Store(store));
    }

    /// <inheritdoc/>
    public IReadOnlyList<string> KvPutVariants => KvVariants;

    /// <inheritdoc/>
    public ValueTask<IKvStore> OpenKvAsync(string directory, string variant)
    {
        foreach ((string name, Mvcc.LogSyncMode mode) in TxLogKvStore.Variants)
        {
            if (name == variant)
            {
                return new ValueTask<IKvStore>(new TxLogKvStore(directory, mode));
            }
        }

        throw new ArgumentException($"unknown kv-put variant '{variant}'", nameof(variant));
    }

    private sealed class Store(LogStore store) : IEngineStore
    {
        private readonly LogPartition _partition = store.GetPartition("bench", 0);
        private LogAppender? _appender;

        public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
        {
            _appender ??= _partition.CreateAppender();
            _appender.Append(new Message(payload));
            return default;
        }

        public ValueTask FlushAsync() => _appender?.FlushAsync() ?? default;

        public ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId) =>
            new(new CommitWriter(_partition));

        public ValueTask CreateAccountsAsync(int count, long balance) =>
            throw new NotSupportedException(FullOutboxSkip);

        public ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId) =>
            throw new NotSupportedException(FullOutboxSkip);

        public async ValueTask<IOutboxLogWriter> CreateOutboxLogWriterAsync(int writerId)
        {
            // Untimed setup: the producer id and epoch are allocated (and fsynced) here, outside the window.
            Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = $"w3-writer-{writerId}" });
            try
            {
                await producer.InitTransactionsAsync();
            }
            catch
            {
                await producer.DisposeAsync();
                throw;
            }

            return new OutboxLogWriter(producer);
        }

        public ValueTask ScanAsync(ScanTally tally)
        {
            using LogReader reader = _partition.OpenReader(_partition.LogStartOffset);
            while (reader.TryRead(out Record record))
            {
                tally.Add(record.Value);
            }

            return default;
        }

        public ValueTask DisposeAsync()
        {
            _appender?.Dispose();
            store.Dispose();
            return default;
        }
    }

    private sealed class CommitWriter(LogPartition partition) : ICommitWriter
    {
        public async ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload) =>
            await partition.AppendAsync(new Message(payload)).ConfigureAwait(false);

        public ValueTask DisposeAsync() => default;
    }

    /// <summary>
    /// A W3 log-only writer: one transaction per call over the three outbox topics. The producer copies
    /// each payload into its batch before ProduceAsync completes, so the runner may reuse the buffers.
    /// </summary>
    private sealed class OutboxLogWriter(Producer producer) : IOutboxLogWriter
    {
        private static readonly TopicPartition[] Partitions = CreatePartitions();

        // Pooled builder: the commit really awaits (fsync) every time, and the default builder would allocate
        // its state machine box per transaction.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask CommitOneAsync(OutboxMessages messages)
        {
            producer.BeginTransaction();
            for (int i = 0; i < Partitions.Length; i++)
            {
                await producer.ProduceAsync(Partitions[i], new Message(messages.GetMessage(i))).ConfigureAwait(false);
            }

            await producer.CommitTransactionAsync().ConfigureAwait(false);
        }

        // Aborts a transaction left open by a failed run (best effort, inside Producer.DisposeAsync).
        public ValueTask DisposeAsync() => producer.DisposeAsync();

        private static TopicPartition[] CreatePartitions()
        {
            var partitions = new TopicPartition[OutboxTransaction.Topics.Length];
            for (int i = 0; i < partitions.Length; i++)
            {
                partitions[i] = new TopicPartition(OutboxTransaction.Topics[i], 0);
            }

            return partitions;
        }
    }
}
