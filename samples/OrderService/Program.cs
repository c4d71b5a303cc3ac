// OrderService: each order debits a customer's balance in a transactional map and publishes
// order-created, inventory-reserve and payment-process — one atomic transaction, no outbox table.
// A read-committed consumer then checks that the balances and the event stream agree.
using System.Buffers.Binary;
using System.Text;
using TxLog;
using TxLog.Consuming;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Records;

string dataDir = args.Length > 0 ? args[0] : Path.Combine(Environment.CurrentDirectory, "txlog-orders");
const int Customers = 5;
const long StartBalance = 1_000;
string[] topics = ["order-created", "inventory-reserve", "payment-process"];

using LogStore store = LogStore.Open(dataDir);
Console.WriteLine($"Store: {store.Directory} (clean previous shutdown: {store.Recovery.CleanShutdown})");
foreach (string topic in topics)
{
    if (!store.TopicExists(topic))
    {
        store.CreateTopic(topic, partitions: 1);
    }
}

TransactionEngine engine = store.OpenTransactionEngine();
TransactionalMap<int, long> balances = engine.OpenMap("balances", Serializers.Int32, Serializers.Int64);
using (MvccTransaction setup = engine.BeginTransaction(TransactionIsolation.Serializable))
{
    if (balances.Count(setup) == 0)
    {
        for (int c = 0; c < Customers; c++)
        {
            balances.Put(setup, c, StartBalance);
        }
    }

    setup.Commit();
}

await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "order-service" });
await producer.InitTransactionsAsync();

var random = new Random();
int placed = 0, rejected = 0;
for (int i = 0; i < 20; i++)
{
    int customer = random.Next(Customers);
    long amount = random.Next(50, 400);
    string orderId = Guid.NewGuid().ToString("N")[..8];
    await using StoreTransaction tx = store.BeginTransaction(producer, TransactionIsolation.Serializable);
    long balance = balances.Get(tx.Maps, customer);
    if (balance < amount)
    {
        await tx.AbortAsync(); // not enough money: nothing is written anywhere
        rejected++;
        continue;
    }

    balances.Put(tx.Maps, customer, balance - amount);
    byte[] key = Encoding.UTF8.GetBytes(orderId);
    byte[] value = new byte[12];
    BinaryPrimitives.WriteInt32BigEndian(value, customer);
    BinaryPrimitives.WriteInt64BigEndian(value.AsSpan(4), amount);
    foreach (string topic in topics)
    {
        await tx.ProduceAsync(new TopicPartition(topic, 0), new Message(key, value));
    }

    await tx.CommitAsync(); // map update + three events, durable, all or nothing
    placed++;
}

Console.WriteLine($"Placed {placed} orders, rejected {rejected} for lack of funds.");

// Check: what the read-committed event stream says was spent equals what the balances lost.
// StoreTransaction.CommitAsync returns once the commit is visible, so the LSO is already at the log end here.
LogPartition payments = store.GetPartition("payment-process", 0);
SpinWait.SpinUntil(() => payments.LastStableOffset == payments.LogEndOffset, TimeSpan.FromSeconds(5));
long spentByEvents = 0;
int ordersSeen = 0;
using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted }))
{
    consumer.Assign(new TopicPartition("payment-process", 0));
    while (consumer.Consume() is { } record)
    {
        spentByEvents += BinaryPrimitives.ReadInt64BigEndian(record.Value.AsSpan(4));
        ordersSeen++;
    }
}

// The three events of an order commit together: every topic holds the same orders, in the same order.
List<string> OrderIds(string topic)
{
    var ids = new List<string>();
    using Consumer c = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
    c.Assign(new TopicPartition(topic, 0));
    while (c.Consume() is { } r)
    {
        ids.Add(Encoding.UTF8.GetString(r.Key!));
    }

    return ids;
}

List<string> paymentIds = OrderIds("payment-process");
bool topicsAgree = topics.All(t => OrderIds(t).SequenceEqual(paymentIds));
Console.WriteLine($"order-created, inventory-reserve and payment-process hold the same {paymentIds.Count} orders: {(topicsAgree ? "yes" : "NO")}.");

long remaining = 0;
using (MvccTransaction read = engine.BeginTransaction(TransactionIsolation.RepeatableRead))
{
    foreach (KeyValuePair<int, long> b in balances.Scan(read))
    {
        remaining += b.Value;
        Console.WriteLine($"  customer {b.Key}: balance {b.Value}");
    }
}

long spentByBalances = (Customers * StartBalance) - remaining;
Console.WriteLine($"payment-process holds {ordersSeen} orders worth {spentByEvents}; balances went down by {spentByBalances}: {(spentByEvents == spentByBalances ? "they agree" : "MISMATCH")}.");
Console.WriteLine($"Data: {store.Directory} (topics {string.Join(", ", topics)}; balances in the MVCC redo log __mvcc_redo-0; checkpoints, once the engine takes one, under mvcc/).");
return spentByEvents == spentByBalances && topicsAgree ? 0 : 1;
