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

    /// <summary>Commits key → key * factor for every key in [from, to), in one ReadCommitted transaction.</summary>
    public void PutAll(int from, int to, int factor)
    {
        using MvccTransaction tx = Begin(TransactionIsolation.ReadCommitted);
        for (int k = from; k < to; k++)
        {
            Map.Put(tx, k, k * factor);
        }

        tx.Commit();
    }

    /// <summary>Every entry of <see cref="Map"/> as a RepeatableRead snapshot sees it.</summary>
    public Dictionary<int, int> ReadAll()
    {
        using MvccTransaction tx = Begin(TransactionIsolation.RepeatableRead);
        return Map.Scan(tx).ToDictionary(p => p.Key, p => p.Value);
    }

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

/// <summary>Raw views of redo segment files for crash-image tests.</summary>
internal static class RedoFiles
{
    /// <summary>
    /// Walks the batch length fields (bytes 8..11 of each batch) to the last batch: its start and end
    /// (the file may end in preallocated zeros).
    /// </summary>
    public static (long Start, long End) LastBatch(byte[] log)
    {
        long position = 0;
        while (true)
        {
            int length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(log.AsSpan((int)position + 8));
            long next = position + 12 + length;
            if (length < 49 || next >= log.Length || next + 17 > log.Length || log[(int)next + 16] != 2)
            {
                return (position, next);
            }

            position = next;
        }
    }
}
