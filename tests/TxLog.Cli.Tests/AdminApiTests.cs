using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Cli.Tests;

/// <summary>The library API behind <c>txlog abort</c>, on a live store.</summary>
public sealed class AdminApiTests
{
    [Test]
    public async Task AbortTransactionAsync_fences_the_producer_writes_abort_markers_and_completes_the_abort()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit, TransactionTimeoutCheckInterval = TimeSpan.FromHours(1) });
        store.CreateTopic("t", 2);
        Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "app" });
        await producer.InitTransactionsAsync();
        short epoch = producer.Epoch;
        producer.BeginTransaction();
        await producer.ProduceAsync(new TopicPartition("t", 0), new Message(Scenario.Bytes("x0")));
        await producer.ProduceAsync(new TopicPartition("t", 1), new Message(Scenario.Bytes("x1")));
        LogPartition p0 = store.GetPartition("t", 0);
        long end = p0.LogEndOffset;
        Assert.That(p0.LastStableOffset, Is.EqualTo(0), "the open transaction holds the LSO");

        Assert.That(await store.AbortTransactionAsync("app"), Is.True);

        TransactionDescription d = store.ListTransactions().Single(t => t.TransactionalId == "app");
        Assert.That(d.State, Is.EqualTo(TransactionState.CompleteAbort));
        Assert.That(d.Epoch, Is.GreaterThan(epoch), "the epoch is bumped: the producer is fenced");
        Assert.That(p0.LogEndOffset, Is.EqualTo(end + 1), "an ABORT marker was appended");
        Assert.That(p0.HighWatermark, Is.EqualTo(p0.LogEndOffset), "the marker is durable when the call completes");
        Assert.That(p0.LastStableOffset, Is.EqualTo(p0.HighWatermark));
        Assert.ThrowsAsync<ProducerFencedException>(async () => await producer.CommitTransactionAsync());

        p0.Append(new Message(Scenario.Bytes("later")));
        await p0.FlushAsync();
        var values = new List<string>();
        using (LogReader reader = p0.OpenReader(0, IsolationLevel.ReadCommitted))
        {
            while (reader.TryRead(out Record record))
            {
                values.Add(System.Text.Encoding.UTF8.GetString(record.Value));
            }
        }

        Assert.That(values, Is.EqualTo(new[] { "later" }));
        Assert.That(await store.AbortTransactionAsync("app"), Is.False, "nothing is open any more");
        Assert.That(await store.AbortTransactionAsync("unknown"), Is.False);
    }
}
