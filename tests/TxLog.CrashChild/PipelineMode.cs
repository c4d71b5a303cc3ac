using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.CrashChild;

/// <summary>
/// Child mode <c>pipeline</c>: exactly-once consume → process → produce. Reads <c>orders</c> (filled
/// by the test: key = order number, value = customer id int32) from the group's committed offset,
/// and per batch of up to 10 orders runs one <see cref="StoreTransaction"/>: adds each order's score
/// to its customer in the map <c>risk</c>, produces a result to <c>risk-results</c> (key = order
/// number), sends the next input offset for group <c>scorer</c>, commits, then prints
/// <c>ACK &lt;next offset&gt;</c>.
/// </summary>
public static class PipelineMode
{
    public const string Input = "orders";
    public const string Output = "risk-results";
    public const string Group = "scorer";

    /// <summary>The deterministic score of an order (so the checker can recompute it).</summary>
    public static long Score(long order) => (order * 7919) % 101;

    public static async Task<int> RunAsync(string directory, Action<string> writeLine)
    {
        using LogStore store = LogStore.Open(directory, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { CheckpointRedoBytes = 256 * 1024, CheckpointInterval = TimeSpan.FromMilliseconds(200) });
        TransactionalMap<int, long> risk = engine.OpenMap("risk", Serializers.Int32, Serializers.Int64);
        await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "scorer" });
        await producer.InitTransactionsAsync();
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = Group, Isolation = IsolationLevel.ReadCommitted });
        var input = new TopicPartition(Input, 0);
        consumer.Assign(input);
        writeLine("READY");
        var batch = new List<ConsumeResult>(10);
        while (true)
        {
            batch.Clear();
            while (batch.Count < 10 && consumer.Consume() is { } record)
            {
                batch.Add(record);
            }

            if (batch.Count == 0)
            {
                writeLine("DONE");
                await Task.Delay(Timeout.Infinite);
            }

            await using StoreTransaction tx = store.BeginTransaction(producer, TransactionIsolation.RepeatableRead);
            foreach (ConsumeResult order in batch)
            {
                long number = BinaryPrimitives.ReadInt64BigEndian(order.Key);
                int customer = BinaryPrimitives.ReadInt32BigEndian(order.Value);
                long score = Score(number);
                risk.Put(tx.Maps, customer, risk.Get(tx.Maps, customer, 0) + score);
                byte[] value = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{customer}:{score}"));
                await tx.ProduceAsync(new TopicPartition(Output, 0), new Message(order.Key, value));
            }

            long next = batch[^1].Offset + 1;
            await tx.SendOffsetsAsync([new TopicPartitionOffset(input, next)], Group);
            await tx.CommitAsync();
            writeLine(string.Create(CultureInfo.InvariantCulture, $"ACK {next}"));
        }
    }
}
