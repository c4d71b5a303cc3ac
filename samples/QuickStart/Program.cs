// QuickStart: open a store in ./txlog-data, append a few records durably, read them back.
// Run it twice: the second run finds the first run's records and appends after them.
using System.Text;
using TxLog;
using TxLog.Records;

string dataDir = args.Length > 0 ? args[0] : Path.Combine(Environment.CurrentDirectory, "txlog-data");
const string Topic = "greetings";

using (LogStore store = LogStore.Open(dataDir))
{
    Console.WriteLine($"Opened store at {store.Directory} (clean previous shutdown: {store.Recovery.CleanShutdown}).");
    foreach (string action in store.Recovery.Actions)
    {
        Console.WriteLine($"  recovery: {action}");
    }

    if (!store.TopicExists(Topic))
    {
        store.CreateTopic(Topic, partitions: 1);
        Console.WriteLine($"Created topic '{Topic}' with 1 partition.");
    }

    LogPartition partition = store.GetPartition(Topic, 0);
    long firstNew = partition.LogEndOffset;

    // One batch of three records, acknowledged after fsync (the default GroupCommit durability).
    Message[] batch =
    [
        new(Encoding.UTF8.GetBytes("alice"), Encoding.UTF8.GetBytes("hello")),
        new(Encoding.UTF8.GetBytes("bob"), Encoding.UTF8.GetBytes("bonjour")),
        new(null, Encoding.UTF8.GetBytes("a record with no key")) { Headers = [new RecordHeader("source", Encoding.UTF8.GetBytes("quickstart"))] },
    ];
    AppendResult appended = await partition.AppendAsync(batch);
    Console.WriteLine($"Appended {appended.Count} records at offsets {appended.BaseOffset}..{appended.LastOffset} (durable: high watermark is now {partition.HighWatermark}).");

    // Read everything from the start of the log.
    Console.WriteLine($"Reading {Topic}-0 from offset {partition.LogStartOffset}:");
    using LogReader reader = partition.OpenReader(partition.LogStartOffset);
    int count = 0;
    while (reader.TryRead(out Record record))
    {
        string key = record.HasKey ? Encoding.UTF8.GetString(record.Key) : "(null)";
        string value = record.HasValue ? Encoding.UTF8.GetString(record.Value) : "(null)";
        string marker = record.Offset >= firstNew ? " (new)" : "";
        Console.WriteLine($"  offset {record.Offset}: key={key} value={value} headers={record.HeaderCount}{marker}");
        count++;
    }

    Console.WriteLine($"Read {count} records; log start {partition.LogStartOffset}, high watermark {partition.HighWatermark}, log end {partition.LogEndOffset}.");
}

Console.WriteLine($"Closed cleanly. The data lives in {dataDir}: topics.meta and {Topic}-0/00000000000000000000.log (Kafka RecordBatch v2).");
