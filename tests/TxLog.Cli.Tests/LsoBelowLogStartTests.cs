using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Cli.Tests;

public sealed class LsoBelowLogStartTests
{
    [Test]
    public async Task Groups_never_shows_an_LSO_below_the_log_start_offset()
    {
        // An open transaction whose first records retention deleted: the store's LSO is the log start
        // offset (as Kafka's), not the transaction's first offset, which is no longer in the log.
        using var dir = new TempDirectory();
        var options = new LogStoreOptions { SegmentBytes = 1024, PreallocateBytes = 0, RetentionBytes = 2048, Durability = DurabilityMode.None };
        long storeLso;
        long logStart;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("r");
            var tp = new TopicPartition("r", 0);
            Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "open" });
            await producer.InitTransactionsAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(tp, new Message(new byte[100])); // offset 0: the transaction starts here
            LogPartition p = store.GetPartition("r", 0);
            for (int i = 0; i < 40; i++)
            {
                p.Append(new Message(new byte[200])); // rolls several segments
            }

            Assert.That(store.EnforceRetention(), Is.GreaterThan(0));
            logStart = p.LogStartOffset;
            Assume.That(logStart, Is.GreaterThan(0));
            using (Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g" }))
            {
                await consumer.Commit([new TopicPartitionOffset(tp, logStart)]);
            }

            storeLso = p.LastStableOffset;
            Assume.That(storeLso, Is.EqualTo(logStart), "the store's own LSO");
        }

        CliResult r = Cli.Run("groups", dir.Path);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        string[] row = r.Rows().Single(c => c[0] == "g" && c[1] == "r" && c[2] == "0");
        Assert.That(long.Parse(row[5]), Is.EqualTo(storeLso), r.ToString());
    }
}
