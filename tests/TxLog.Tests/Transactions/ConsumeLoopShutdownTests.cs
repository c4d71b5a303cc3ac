using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// Regression (found by a bug hunt): a ConsumeAsync loop waiting for data never ended when the store was
/// disposed or the assigned topic deleted: nothing woke it, and a reader of a closed partition only
/// reports "caught up", so even a wake-up would have sent it back to waiting for ever.
/// </summary>
public sealed class ConsumeLoopShutdownTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task Disposing_the_store_ends_a_waiting_consume_loop(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        Task loop = Task.Run(async () =>
        {
            await foreach (ConsumeResult _ in consumer.ConsumeAsync())
            {
            }
        });
        await Task.Delay(100);
        Assert.That(loop.IsCompleted, Is.False);
        store.Dispose();
        Task done = await Task.WhenAny(loop, Task.Delay(3000));
        Assert.That(done, Is.SameAs(loop), "the loop still waits on a disposed store");
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await loop);
    }

    [Test]
    public async Task Deleting_the_topic_ends_a_waiting_consume_loop()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        Task loop = Task.Run(async () =>
        {
            await foreach (ConsumeResult _ in consumer.ConsumeAsync())
            {
            }
        });
        await Task.Delay(100);
        store.DeleteTopic("t");
        Task done = await Task.WhenAny(loop, Task.Delay(3000));
        Assert.That(done, Is.SameAs(loop), "the loop still waits on a deleted topic");
        Assert.ThrowsAsync<TopicNotFoundException>(async () => await loop);
    }
}
