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


    /// <inheritdoc/>
    public string Name => "txlog";

    /// <inheritdoc/>
    public ValueTask<IEngineStore> OpenAsync(string directory, Workload workload)
    {
        var store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        try
        {
            if (!store.TopicExists("bench"))
            {
                store.CreateTopic("bench");
            }

            if (workload is Workload.OutboxLog or Workload.Outbox)
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

        private Mvcc.TransactionEngine? _engine;
        private Mvcc.TransactionalMap<int, long>? _accounts;
        private long _expectedTotal;
        private long _outboxCommits;

        // Full W3: accounts in a transactional map of the MVCC engine; each transaction is a StoreTransaction
        // (two balance updates + three messages, one decision, one parallel fsync round).
        public ValueTask CreateAccountsAsync(int count, long balance)
        {
            _engine = store.OpenTransactionEngine(new Mvcc.MvccOptions { SyncMode = Mvcc.LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue, LockTimeout = TimeSpan.FromSeconds(2) });
            _accounts = _engine.OpenMap("accounts", Mvcc.Serializers.Int32, Mvcc.Serializers.Int64);
            using Mvcc.MvccTransaction setup = _engine.BeginTransaction(Mvcc.TransactionIsolation.ReadCommitted);
            for (int a = 0; a < count; a++)
            {
                _accounts.Put(setup, a, balance);
            }

            setup.Commit();
            _expectedTotal = count * balance;
            return default;
        }

        public async ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId)
        {
            Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = $"w3-full-writer-{writerId}" });
            await producer.InitTransactionsAsync();
            return new FullOutboxWriter(store, producer, _accounts!, () => Interlocked.Increment(ref _outboxCommits));
        }

        // After the run: the balances still sum to the start and every commit has its 3 messages.
        private void VerifyOutbox()
        {
            using Mvcc.MvccTransaction tx = _engine!.BeginTransaction(Mvcc.TransactionIsolation.RepeatableRead);
            long total = 0;
            foreach (KeyValuePair<int, long> account in _accounts!.Scan(tx))
            {
                total += account.Value;
            }

            long commits = Interlocked.Read(ref _outboxCommits);
            foreach (string topic in OutboxTransaction.Topics)
            {
                LogPartition p = store.GetPartition(topic, 0);
                SpinWait.SpinUntil(() => p.LastStableOffset == p.LogEndOffset, TimeSpan.FromSeconds(10));
                long messages = 0;
                using LogReader reader = p.OpenReader(p.LogStartOffset, Consuming.IsolationLevel.ReadCommitted);
                while (reader.TryRead(out Record _))
                {
                    messages++;
                }

                if (messages != commits)
                {
                    throw new InvalidOperationException($"W3 check failed: {commits} committed transactions but {messages} committed messages on {topic}.");
                }
            }

            if (total != _expectedTotal)
            {
                throw new InvalidOperationException($"W3 check failed: balances sum to {total}, expected {_expectedTotal}.");
            }

            Console.Error.WriteLine($"# txlog W3 check: {commits} transactions, balances sum unchanged ({total}), 3 x {commits} committed messages; {FullOutboxWriter.Retries} write-conflict retries so far");
        }

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
            try
            {
                if (_engine is not null)
                {
                    VerifyOutbox();
                }
            }
            finally
            {
                store.Dispose();
            }

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
    /// A full W3 writer: one <see cref="StoreTransaction"/> per call (RepeatableRead; a write conflict on an
    /// account rolls back and retries), moving the amount and appending the three messages atomically.
    /// </summary>
    private sealed class FullOutboxWriter(LogStore store, Producer producer, Mvcc.TransactionalMap<int, long> accounts, Action committed) : IOutboxWriter
    {
        private static readonly TopicPartition[] Partitions = [new(OutboxTransaction.Topics[0], 0), new(OutboxTransaction.Topics[1], 0), new(OutboxTransaction.Topics[2], 0)];

        public async ValueTask CommitOneAsync(OutboxTransaction transaction)
        {
            while (true)
            {
                StoreTransaction tx = store.BeginTransaction(producer, Mvcc.TransactionIsolation.RepeatableRead);
                try
                {
                    accounts.Put(tx.Maps, transaction.From, accounts.Get(tx.Maps, transaction.From) - transaction.Amount);
                    accounts.Put(tx.Maps, transaction.To, accounts.Get(tx.Maps, transaction.To) + transaction.Amount);
                }
                catch (Mvcc.WriteConflictException)
                {
                    // A concurrent transaction changed one of the accounts after this snapshot: retry.
                    Interlocked.Increment(ref s_retries);
                    await tx.AbortAsync().ConfigureAwait(false);
                    continue;
                }

                for (int i = 0; i < Partitions.Length; i++)
                {
                    await tx.ProduceAsync(Partitions[i], new Message(transaction.Messages.GetMessage(i))).ConfigureAwait(false);
                }

                await tx.CommitAsync().ConfigureAwait(false);
                committed();
                return;
            }
        }

        public ValueTask DisposeAsync() => producer.DisposeAsync();

        private static long s_retries;

        /// <summary>Write-conflict retries of all writers so far (printed with the check).</summary>
        public static long Retries => Interlocked.Read(ref s_retries);
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
