using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Mvcc;

internal sealed class EngineFixture : IDisposable
{
    private readonly TempDirectory? _ownedDirectory;

    public EngineFixture(MvccOptions? options = null, string? path = null, DurabilityMode mode = DurabilityMode.None)
    {
        if (path is null)
        {
            _ownedDirectory = new TempDirectory();
            path = _ownedDirectory.Path;
        }

        Path = path;
        Options = options ?? new MvccOptions { SyncMode = LogSyncMode.NoSync, LockTimeout = TimeSpan.FromMilliseconds(200), CheckpointInterval = null };
        Store = LogStore.Open(path, new LogStoreOptions { Durability = mode });
        Engine = Store.OpenTransactionEngine(Options);
        Map = Engine.OpenMap("test", Serializers.Int32, Serializers.Int32);
    }

    public string Path { get; }

    public MvccOptions Options { get; }

    public LogStore Store { get; }

    public TransactionEngine Engine { get; }

    public TransactionalMap<int, int> Map { get; }

    public MvccTransaction Begin(TransactionIsolation isolation) => Engine.BeginTransaction(isolation);

    /// <summary>Hermitage's setup: rows (1, 10) and (2, 20).</summary>
    public void Seed()
    {
        using MvccTransaction tx = Begin(TransactionIsolation.ReadCommitted);
        Map.Put(tx, 1, 10);
        Map.Put(tx, 2, 20);
        tx.Commit();
    }

    public int Read(int key)
    {
        using MvccTransaction tx = Begin(TransactionIsolation.ReadCommitted);
        return Map.Get(tx, key, -1);
    }

    public void Dispose()
    {
        Store.Dispose();
        _ownedDirectory?.Dispose();
    }
}
