using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Transactions;

internal static class Tx
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    public static LogStoreOptions Options(DurabilityMode mode = DurabilityMode.None, TimeProvider? clock = null) => new()
    {
        Durability = mode,
        TimeProvider = clock ?? TimeProvider.System,
        TransactionTimeoutCheckInterval = TimeSpan.FromHours(1), // tests call AbortExpiredTransactions themselves
    };

    public static async Task<Producer> TransactionalAsync(LogStore store, string id, TimeSpan? timeout = null)
    {
        Producer p = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = id, TransactionTimeout = timeout ?? TimeSpan.FromSeconds(60) });
        await p.InitTransactionsAsync();
        return p;
    }

    public static Message Msg(string value) => new(Bytes(value));

    /// <summary>Reads "offset:value" from a partition with an isolation level, from an offset.</summary>
    public static List<string> Read(LogPartition partition, long from, IsolationLevel isolation)
    {
        var list = new List<string>();
        using LogReader reader = partition.OpenReader(from, isolation);
        while (reader.TryRead(out Record record))
        {
            list.Add($"{record.Offset}:{(record.HasValue ? Text(record.Value) : "null")}");
        }

        return list;
    }

    public static List<string> Values(LogPartition partition, IsolationLevel isolation)
    {
        var list = new List<string>();
        using LogReader reader = partition.OpenReader(partition.LogStartOffset, isolation);
        while (reader.TryRead(out Record record))
        {
            list.Add(Text(record.Value));
        }

        return list;
    }

    /// <summary>Appends a raw idempotent/transactional batch through the partition (the retry path).</summary>
    public static AppendResult? AppendRaw(LogStore store, LogPartition partition, long pid, short epoch, int sequence, bool transactional, params string[] values)
    {
        RecordBatchBuilder builder = store.RentBuilder();
        try
        {
            builder.Reset(transactional ? RecordBatchLayout.TransactionalFlag : (short)0, pid, epoch, sequence);
            foreach (string v in values)
            {
                builder.Add(Msg(v), 1000);
            }

            var header = new ProducerBatchHeader(pid, epoch, sequence, values.Length - 1, transactional, false, ControlRecordType.Commit, -1, builder.MaxTimestamp);
            return partition.AppendProducerBatch(builder, header);
        }
        finally
        {
            store.ReturnBuilder(builder);
        }
    }

    /// <summary>See <see cref="TxLog.Tests.Storage.TestRecords.CopyImage"/>.</summary>
    public static void CopyImage(string from, string to) => TxLog.Tests.Storage.TestRecords.CopyImage(from, to);
}
