// ExactlyOncePipeline: consume orders -> score them -> produce risk-results + per-customer risk state +
// the input offset, all in one transaction. Run with --crash-after N to kill the process abruptly after
// N batches, or --crash-mid N to kill it inside batch N (results produced, state written, offsets sent,
// not committed); run again without it: the pipeline resumes where the last commit left off, and the
// check at the end shows no order processed twice and none skipped.
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TxLog;
using TxLog.Consuming;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;

string dataDir = Path.Combine(Environment.CurrentDirectory, "txlog-pipeline");
int crashAfter = -1;
int crashMid = -1;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--crash-after" && i + 1 < args.Length)
    {
        crashAfter = int.Parse(args[++i], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--crash-mid" && i + 1 < args.Length)
    {
        crashMid = int.Parse(args[++i], CultureInfo.InvariantCulture);
    }
    else if (args[i] == "--data" && i + 1 < args.Length)
    {
        dataDir = args[++i];
    }
}

const int Orders = 2_000;
const int Customers = 13;
static long Score(long order) => (order * 7919) % 101;
var input = new TopicPartition("orders", 0);
var output = new TopicPartition("risk-results", 0);

using LogStore store = LogStore.Open(dataDir);
Console.WriteLine($"Store: {store.Directory} (clean previous shutdown: {store.Recovery.CleanShutdown})");
if (!store.TopicExists("orders"))
{
    store.CreateTopic("orders");
    store.CreateTopic("risk-results");
    using LogAppender appender = store.GetPartition("orders", 0).CreateAppender();
    for (long order = 0; order < Orders; order++)
    {
        byte[] key = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(key, order);
        byte[] value = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(value, (int)(order % Customers));
        appender.Append(new Message(key, value));
    }

    await appender.FlushAsync();
    Console.WriteLine($"Wrote {Orders} orders to 'orders'.");
}

TransactionEngine engine = store.OpenTransactionEngine();
TransactionalMap<int, long> risk = engine.OpenMap("customer-risk", Serializers.Int32, Serializers.Int64);
await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "risk-scorer" });
await producer.InitTransactionsAsync();
using Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "risk-scorer", Isolation = IsolationLevel.ReadCommitted });
consumer.Assign(input);
Console.WriteLine($"Resuming at input offset {consumer.Position(input)}.");

int batches = 0;
var batch = new List<ConsumeResult>(50);
while (true)
{
    batch.Clear();
    batch.AddRange(consumer.ConsumeBatch(50)); // one poll: with a subscribed group, one assignment per batch

    if (batch.Count == 0)
    {
        break;
    }

    await using StoreTransaction tx = store.BeginTransaction(producer);
    foreach (ConsumeResult order in batch)
    {
        long number = BinaryPrimitives.ReadInt64BigEndian(order.Key);
        int customer = BinaryPrimitives.ReadInt32BigEndian(order.Value);
        risk.Put(tx.Maps, customer, risk.Get(tx.Maps, customer, 0) + Score(number));
        await tx.ProduceAsync(output, new Message(order.Key, Encoding.UTF8.GetBytes(Score(number).ToString(CultureInfo.InvariantCulture))));
    }

    await tx.SendOffsetsAsync([new TopicPartitionOffset(input, batch[^1].Offset + 1)], consumer.GroupMetadata); // fenced if the consumer were a subscribed member that lost the partition
    if (batches + 1 == crashMid)
    {
        // Everything of this batch is written (results in the log, state in the redo, offsets pending)
        // but not committed: the next run's recovery aborts all of it, and the batch is processed again.
        Console.WriteLine($"Crashing on purpose inside batch {batches + 1}, before its commit (input offsets {batch[0].Offset}..{batch[^1].Offset}).");
        Environment.FailFast("simulated crash inside a transaction");
    }

    await tx.CommitAsync();
    if (++batches == crashAfter)
    {
        Console.WriteLine($"Crashing on purpose after {batches} batches (input offset {batch[^1].Offset + 1} committed).");
        Environment.FailFast("simulated crash"); // no clean close: the next run recovers
    }
}

// Check: results are exactly orders 0..N-1 once each, and the state agrees with them.
LogPartition results = store.GetPartition("risk-results", 0);
SpinWait.SpinUntil(() => results.LastStableOffset == results.LogEndOffset, TimeSpan.FromSeconds(5));
var seen = new List<long>();
var expected = new long[Customers];
using (LogReader reader = results.OpenReader(results.LogStartOffset, IsolationLevel.ReadCommitted))
{
    while (reader.TryRead(out Record r))
    {
        long order = BinaryPrimitives.ReadInt64BigEndian(r.Key);
        seen.Add(order);
        expected[order % Customers] += Score(order);
    }
}

bool inOrder = seen.Count == Orders;
for (int i = 0; i < seen.Count && inOrder; i++)
{
    inOrder = seen[i] == i;
}

bool stateAgrees = true;
using (MvccTransaction read = engine.BeginTransaction(TransactionIsolation.RepeatableRead))
{
    for (int c = 0; c < Customers; c++)
    {
        stateAgrees &= risk.Get(read, c, 0) == expected[c];
    }
}

Console.WriteLine($"risk-results holds {seen.Count} results for {Orders} orders: {(inOrder ? "each order exactly once, no gaps" : "DUPLICATES OR GAPS")}; customer-risk state {(stateAgrees ? "agrees" : "DISAGREES")}.");
return inOrder && stateAgrees ? 0 : 1;
