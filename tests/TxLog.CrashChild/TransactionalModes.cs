using System.Globalization;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.CrashChild;

/// <summary>
/// The transactional child modes of the kill -9 tests.
/// <list type="bullet">
/// <item><c>txn</c>: a transactional producer writes transactions of 1-4 records over topic <c>ta</c>
/// (2 partitions) and <c>tb</c> (1 partition); each record's value is <c>run:txn:index:count</c>. A
/// quarter of the transactions are aborted. After CommitTransaction returns it prints
/// <c>COMMIT run txn count</c>; after an abort, <c>ABORT run txn</c>; before committing,
/// <c>TRY run txn</c>.</item>
/// <item><c>mvcc</c>: the MVCC engine in Instant mode; each transaction moves an amount between two of
/// 20 accounts (map <c>accounts</c>) and inserts key <c>run:txn</c> into map <c>done</c>, then prints
/// <c>ACK run txn</c> after Commit returns (a fifth are rolled back instead: <c>ROLLBACK run txn</c>).</item>
/// </list>
/// </summary>
public static class TransactionalModes
{
    public const int Accounts = 20;
    public const long InitialBalance = 1000;

    public static async Task<int> TransactionsAsync(string directory, int run, Action<string> writeLine)
    {
        using LogStore store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        if (!store.TopicExists("ta"))
        {
            store.CreateTopic("ta", 2);
            store.CreateTopic("tb", 1);
        }

        await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "crash-txn" });
        await producer.InitTransactionsAsync();
        TopicPartition[] targets = [new("ta", 0), new("ta", 1), new("tb", 0)];
        var random = new Random(run);
        writeLine("READY");
        for (long txn = 0; ; txn++)
        {
            producer.BeginTransaction();
            int count = random.Next(1, 5);
            for (int i = 0; i < count; i++)
            {
                string value = string.Create(CultureInfo.InvariantCulture, $"{run}:{txn}:{i}:{count}");
                await producer.ProduceAsync(targets[random.Next(targets.Length)], new Message(System.Text.Encoding.UTF8.GetBytes(value)));
            }

            if (random.Next(4) == 0)
            {
                await producer.AbortTransactionAsync();
                writeLine(string.Create(CultureInfo.InvariantCulture, $"ABORT {run} {txn}"));
            }
            else
            {
                writeLine(string.Create(CultureInfo.InvariantCulture, $"TRY {run} {txn}"));
                await producer.CommitTransactionAsync();
                writeLine(string.Create(CultureInfo.InvariantCulture, $"COMMIT {run} {txn} {count}"));
            }
        }
    }

    public static int Mvcc(string directory, int run, Action<string> writeLine)
    {
        using LogStore store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.None });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.Instant, CheckpointRedoBytes = 256 * 1024, CheckpointInterval = TimeSpan.FromMilliseconds(150) });
        TransactionalMap<int, long> accounts = engine.OpenMap("accounts", Serializers.Int32, Serializers.Int64);
        TransactionalMap<string, long> done = engine.OpenMap("done", Serializers.String, Serializers.Int64);
        using (MvccTransaction setup = engine.BeginTransaction(TransactionIsolation.Serializable))
        {
            if (accounts.Count(setup) == 0)
            {
                for (int a = 0; a < Accounts; a++)
                {
                    accounts.Put(setup, a, InitialBalance);
                }
            }

            setup.Commit();
        }

        var random = new Random(run);
        writeLine("READY");
        for (long txn = 0; ; txn++)
        {
            int from = random.Next(Accounts);
            int to = (from + 1 + random.Next(Accounts - 1)) % Accounts;
            long amount = random.Next(1, 100);
            using MvccTransaction tx = engine.BeginTransaction(TransactionIsolation.RepeatableRead);
            accounts.Put(tx, from, accounts.Get(tx, from) - amount);
            accounts.Put(tx, to, accounts.Get(tx, to) + amount);
            string key = string.Create(CultureInfo.InvariantCulture, $"{run}:{txn}");
            done.Put(tx, key, amount);
            if (random.Next(5) == 0)
            {
                tx.Rollback();
                writeLine(string.Create(CultureInfo.InvariantCulture, $"ROLLBACK {run} {txn}"));
                continue;
            }

            tx.Commit();
            writeLine(string.Create(CultureInfo.InvariantCulture, $"ACK {run} {txn}"));
        }
    }
}
