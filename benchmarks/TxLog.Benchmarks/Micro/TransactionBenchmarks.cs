using BenchmarkDotNet.Attributes;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Benchmarks.Micro;

/// <summary>
/// Allocation (and, on a quiet machine, latency) of one transaction on the commit path, one writer:
/// the W3 shapes — three 200-byte messages to three topics (log only), the same plus two balance updates
/// in a transactional map (unified), and one message to one topic (the single-partition fast path).
/// Every commit fsyncs (a multi-partition commit makes its data and decision durable in every mode), so
/// the time column is dominated by the disk; the allocation column is what this suite is for.
/// </summary>
[MemoryDiagnoser]
public class TransactionBenchmarks
{
    private static readonly TopicPartition[] Topics = [new("order-created", 0), new("inventory-reserve", 0), new("payment-process", 0)];

    private string _dir = "";
    private LogStore _store = null!;
    private Producer _producer = null!;
    private TransactionalMap<int, long> _accounts = null!;
    private Message _message;
    private int _next;

    /// <summary>Opens a store (durability None) with the three topics, a transactional producer and a map of 100 accounts.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "txlog-bench-txn-" + Guid.NewGuid().ToString("N"));
        _store = LogStore.Open(_dir, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 256L << 20 });
        foreach (TopicPartition tp in Topics)
        {
            _store.CreateTopic(tp.Topic);
        }

        TransactionEngine engine = _store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null });
        _accounts = engine.OpenMap("accounts", Serializers.Int32, Serializers.Int64);
        using (MvccTransaction setup = engine.BeginTransaction(TransactionIsolation.ReadCommitted))
        {
            for (int i = 0; i < 100; i++)
            {
                _accounts.Put(setup, i, 1_000_000);
            }

            setup.Commit();
        }

        _producer = _store.CreateProducerAsync(new ProducerOptions { TransactionalId = "bench" }).AsTask().GetAwaiter().GetResult();
        _producer.InitTransactionsAsync().GetAwaiter().GetResult();
        byte[] payload = new byte[200];
        new Random(1).NextBytes(payload);
        _message = new Message(payload);
    }

    /// <summary>Closes and deletes the store.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _producer.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>W3 log-only: three messages to three topics, committed.</summary>
    [Benchmark]
    public async Task LogOnlyThreeTopics()
    {
        _producer.BeginTransaction();
        foreach (TopicPartition tp in Topics)
        {
            await _producer.ProduceAsync(tp, _message);
        }

        await _producer.CommitTransactionAsync();
    }

    /// <summary>One message to one topic, committed (its marker is the decision).</summary>
    [Benchmark]
    public async Task LogOnlyOneTopic()
    {
        _producer.BeginTransaction();
        await _producer.ProduceAsync(Topics[0], _message);
        await _producer.CommitTransactionAsync();
    }

    /// <summary>W3 full: two balance updates and three messages in one unified transaction.</summary>
    [Benchmark]
    public async Task UnifiedTransfer()
    {
        int from = _next++ % 100;
        int to = (from + 1) % 100;
        StoreTransaction tx = _store.BeginTransaction(_producer, TransactionIsolation.RepeatableRead);
        _accounts.Put(tx.Maps, from, _accounts.Get(tx.Maps, from) - 1);
        _accounts.Put(tx.Maps, to, _accounts.Get(tx.Maps, to) + 1);
        foreach (TopicPartition tp in Topics)
        {
            await tx.ProduceAsync(tp, _message);
        }

        await tx.CommitAsync();
    }
}
