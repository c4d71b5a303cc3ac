using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class TransactionalOffsetsStressTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition T1 = new("t", 1);
    private static readonly TopicPartition U0 = new("u", 0);

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task Offsets_of_several_groups_follow_their_transactions_outcomes(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), manualTimestamp: true);
        using (LogStore store = LogStore.Open(dir.Path, Options(mode, clock)))
        {
            store.CreateTopic("t", 2);
            store.CreateTopic("u", 1);
            Producer a = await TransactionalAsync(store, "a", TimeSpan.FromSeconds(10));
            Producer b = await TransactionalAsync(store, "b", TimeSpan.FromSeconds(100));

            a.BeginTransaction();
            b.BeginTransaction();
            await a.ProduceAsync(U0, Msg("a1"));
            await a.SendOffsetsToTransactionAsync([new(T0, 5), new(T1, 6)], "g1");
            await b.SendOffsetsToTransactionAsync([new(T0, 50)], "g1");
            await a.SendOffsetsToTransactionAsync([new(T0, 7)], "g2");
            await b.SendOffsetsToTransactionAsync([new(T1, 60)], "g2");
            await b.CommitTransactionAsync(); // offsets-only, single partition
            Assert.That(store.Groups.Committed("g1", T0), Is.EqualTo(50));
            Assert.That(store.Groups.Committed("g2", T1), Is.EqualTo(60));
            Assert.That(store.Groups.Committed("g1", T1), Is.Null);
            await a.CommitTransactionAsync(); // two partitions: u-0 and __consumer_offsets-0
            await WaitUntil(() => store.Groups.Committed("g2", T0) == 7);
            Assert.That(store.Groups.Committed("g1", T0), Is.EqualTo(50), "b's record is newer in the log than a's (Kafka's rule)");
            Assert.That(store.Groups.Committed("g1", T1), Is.EqualTo(6));

            // aborted by the timeout
            a.BeginTransaction();
            await a.ProduceAsync(U0, Msg("a2"));
            await a.SendOffsetsToTransactionAsync([new(T0, 99), new(T1, 99)], "g1");
            clock.Advance(TimeSpan.FromSeconds(11));
            Assert.That(store.Coordinator.AbortExpiredTransactions(), Is.EqualTo(1));
            Assert.ThrowsAsync<TransactionTimedOutException>(() => a.CommitTransactionAsync());

            // aborted by a new instance
            b.BeginTransaction();
            await b.SendOffsetsToTransactionAsync([new(T0, 77)], "g2");
            Producer b2 = await TransactionalAsync(store, "b");
            Assert.ThrowsAsync<ProducerFencedException>(() => b.CommitTransactionAsync());
            b2.BeginTransaction();
            await b2.SendOffsetsToTransactionAsync([new(T1, 61)], "g2");
            await b2.CommitTransactionAsync();
            await WaitUntil(() => store.Groups.Committed("g2", T1) == 61);
            Check(store);
        }

        using (LogStore reopened = LogStore.Open(dir.Path, Options(mode, clock)))
        {
            Check(reopened);
            Assert.That(Values(reopened.GetPartition("u", 0), IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "a1" }));
        }
    }

    private static void Check(LogStore store)
    {
        Assert.Multiple(() =>
        {
            Assert.That(store.Groups.Committed("g1", T0), Is.EqualTo(50));
            Assert.That(store.Groups.Committed("g1", T1), Is.EqualTo(6));
            Assert.That(store.Groups.Committed("g2", T0), Is.EqualTo(7));
            Assert.That(store.Groups.Committed("g2", T1), Is.EqualTo(61));
        });
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition() && sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            await Task.Delay(5);
        }

        Assert.That(condition(), Is.True);
    }
}
