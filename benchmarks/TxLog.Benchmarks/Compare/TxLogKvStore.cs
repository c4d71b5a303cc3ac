using TxLog.Durability;
using TxLog.Mvcc;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// TxLog's MVCC engine under <c>kv-put</c>: a store opened with <see cref="DurabilityMode.None"/> (the engine
/// waits for the redo itself, as its sync mode says), one engine with <see cref="MvccOptions.SyncMode"/> set by
/// the variant, no timed checkpoints (<see cref="MvccOptions.CheckpointInterval"/> null) and the redo-size
/// trigger turned off (<see cref="MvccOptions.CheckpointRedoBytes"/> = max), so no checkpoint of the 1M-entry
/// map lands in (or just before) the timed window; and one byte[] map <c>kv</c>.
/// The load commits transactions of <see cref="LoadTransactionSize"/> puts. Each operation is
/// <c>BeginTransaction(ReadCommitted)</c>, one <c>Put</c>, synchronous <c>Commit()</c> (a blind write needs
/// no snapshot; under RepeatableRead two writers picking the same key would fail first-committer-wins instead
/// of waiting); the row-lock wait and the Instant fsync wait block the writer's dedicated thread.
/// </summary>
internal sealed class TxLogKvStore : IKvStore
{
    /// <summary>Puts per load transaction.</summary>
    public const int LoadTransactionSize = 10_000;

    private readonly LogStore _store;
    private readonly TransactionEngine _engine;
    private readonly TransactionalMap<byte[], byte[]> _map;

    public TxLogKvStore(string directory, LogSyncMode mode)
    {
        _store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.None });
        try
        {
            _engine = _store.OpenTransactionEngine(new MvccOptions
            {
                SyncMode = mode,
                CheckpointInterval = null,
                CheckpointRedoBytes = long.MaxValue,
            });
            _map = _engine.OpenMap("kv");
        }
        catch
        {
            _store.Dispose();
            throw;
        }
    }

    /// <summary>The variants: JSON workload name and sync mode.</summary>
    public static readonly IReadOnlyList<(string Variant, LogSyncMode Mode)> Variants =
    [
        ("kv_put_instant", LogSyncMode.Instant),
        ("kv_put_periodic", LogSyncMode.Periodic),
        ("kv_put_nosync", LogSyncMode.NoSync),
    ];

    public ValueTask LoadAsync(long count)
    {
        Load(_engine, _map, count);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Loads keys 0..count-1 in transactions of <see cref="LoadTransactionSize"/> puts (ReadCommitted, synchronous
    /// commit); the map copies each key and value, so one pair of buffers serves every put.
    /// </summary>
    internal static void Load(TransactionEngine engine, TransactionalMap<byte[], byte[]> map, long count)
    {
        byte[] key = new byte[KvData.KeySize];
        byte[] value = new byte[KvData.ValueSize];
        long index = 0;
        while (index < count)
        {
            long end = Math.Min(count, index + LoadTransactionSize);
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            for (; index < end; index++)
            {
                KvData.FillKey(key, index);
                KvData.FillLoadValue(value, index);
                map.Put(tx, key, value);
            }

            tx.Commit();
        }
    }

    public ValueTask<IKvWriter> CreateWriterAsync(int writerId) => new(new Writer(_engine, _map));

    public ValueTask DisposeAsync()
    {
        // Disposing the store disposes its engine, which flushes the redo (Periodic / NoSync): untimed.
        _store.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class Writer(TransactionEngine engine, TransactionalMap<byte[], byte[]> map) : IKvWriter
    {
        public ValueTask PutAsync(byte[] key, byte[] value)
        {
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.ReadCommitted);
            map.Put(tx, key, value);
            tx.Commit();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
