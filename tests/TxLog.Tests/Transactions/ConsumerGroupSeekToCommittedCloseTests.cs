using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>SeekToCommittedAsync and a store that closes.</summary>
public sealed class ConsumerGroupSeekToCommittedCloseTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition Out = new("out", 0);

    private static ConsumerOptions Member(AutoOffsetReset reset = AutoOffsetReset.Earliest) =>
        new() { GroupId = "g", MaxPollInterval = System.Threading.Timeout.InfiniteTimeSpan, AutoOffsetReset = reset };

    // Regression: SeekToCommittedAsync waited only on the offsets partition's signal. On a store that
    // was closed (or closed between its look at the store and taking the signal's task), nothing
    // pulses it any more, so a transaction left open with the partition's offsets kept it waiting for
    // ever instead of failing as ConsumeAsync does.
    [Test]
    public async Task SeekToCommitted_on_a_closed_store_fails_instead_of_waiting_for_ever()
    {
        using var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        store.GetPartition("t", 0).Append(Msg("0"));
        using Consumer a = store.CreateConsumer(Member());
        a.Subscribe("t");
        Assert.That(a.ConsumeBatch(10), Has.Count.EqualTo(1), "precondition");
        Producer producer = await TransactionalAsync(store, "eos");
        producer.BeginTransaction();
        await producer.SendOffsetsToTransactionAsync([new TopicPartitionOffset(T0, 1)], a.GroupMetadata);
        store.Dispose();

        Task seek = a.SeekToCommittedAsync();
        Assert.That(await Task.WhenAny(seek, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(seek), "still waiting");
        Assert.ThrowsAsync<ObjectDisposedException>(async () => await seek);
    }
}
