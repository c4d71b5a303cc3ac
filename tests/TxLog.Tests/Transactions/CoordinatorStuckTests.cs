using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class CoordinatorStuckTests
{
    // A transaction whose coordinator record cannot be written (here: it names more partitions than
    // MaxBatchBytes holds) must not wedge its transactional id for the rest of the session.
    [Test]
    public async Task A_commit_whose_PrepareCommit_record_cannot_be_written_does_not_wedge_the_id()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Options();
        options.MaxBatchBytes = 4096;
        using LogStore store = LogStore.Open(dir.Path, options);
        string topic = new('x', 200);
        store.CreateTopic(topic, 20);
        Producer p = await TransactionalAsync(store, "wide");
        p.BeginTransaction();
        int refused = 0;
        for (int i = 0; i < 20; i++)
        {
            try
            {
                await p.ProduceAsync(new TopicPartition(topic, i), Msg("v"));
            }
            catch (InvalidTransactionStateException)
            {
                refused++; // a clear refusal up front is fine (the transaction stays committable)
            }
        }

        Exception? commitError = null;
        try
        {
            await p.CommitTransactionAsync();
        }
        catch (Exception e)
        {
            commitError = e;
        }

        TestContext.Out.WriteLine($"refused {refused}; commit: {commitError?.GetType().Name}: {commitError?.Message}");
        TestContext.Out.WriteLine(string.Join("\n", store.Coordinator.ListTransactions()));

        Exception? abortError = null;
        try
        {
            await p.AbortTransactionAsync();
        }
        catch (Exception e)
        {
            abortError = e;
        }

        TestContext.Out.WriteLine($"abort: {abortError?.GetType().Name}: {abortError?.Message}");

        Producer fresh = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "wide" });
        var errors = new List<string>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                await fresh.InitTransactionsAsync();
                break;
            }
            catch (Exception e)
            {
                errors.Add($"{e.GetType().Name}: {e.Message}");
                await Task.Delay(50);
            }
        }

        TestContext.Out.WriteLine("init: " + string.Join("\n  ", errors));
        Assert.Multiple(() =>
        {
            Assert.That(errors, Has.Count.LessThan(3), "InitTransactions of the id never succeeds again in this session");
            for (int i = 0; i < 20; i++)
            {
                LogPartition part = store.GetPartition(topic, i);
                Assert.That(part.LastStableOffset, Is.EqualTo(part.HighWatermark), $"partition {i}: the transaction still holds the LSO");
            }
        });
    }

    [Test]
    public async Task Epoch_exhaustion_gives_a_new_producer_id_and_fences_the_old_one_everywhere()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 2);
        Producer first = await TransactionalAsync(store, "ex");
        var table = (System.Collections.IDictionary)typeof(TransactionCoordinator).GetField("_transactions", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(store.Coordinator)!;
        object m = table["ex"]!;
        m.GetType().GetProperty("Epoch")!.SetValue(m, (short)(short.MaxValue - 2));
        Producer old = await TransactionalAsync(store, "ex");
        Assert.That(old.Epoch, Is.EqualTo(short.MaxValue - 1));
        old.BeginTransaction();
        await old.ProduceAsync(new TopicPartition("t", 0), Msg("old-open"));
        Producer fresh = await TransactionalAsync(store, "ex");
        Assert.That(fresh.ProducerId, Is.Not.EqualTo(old.ProducerId));
        Assert.That(fresh.Epoch, Is.EqualTo((short)0));
        Assert.ThrowsAsync<ProducerFencedException>(async () => await old.ProduceAsync(new TopicPartition("t", 1), Msg("zombie")));
        Assert.ThrowsAsync<ProducerFencedException>(() => old.CommitTransactionAsync());
        fresh.BeginTransaction();
        await fresh.ProduceAsync(new TopicPartition("t", 0), Msg("new"));
        await fresh.ProduceAsync(new TopicPartition("t", 1), Msg("new"));
        await fresh.CommitTransactionAsync();
        Assert.That(Values(store.GetPartition("t", 0), TxLog.Consuming.IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new" }));
        Assert.That(Values(store.GetPartition("t", 1), TxLog.Consuming.IsolationLevel.ReadCommitted), Is.EqualTo(new[] { "new" }));
        Producer again = await TransactionalAsync(store, "ex");
        Assert.That((again.ProducerId, again.Epoch), Is.EqualTo((fresh.ProducerId, (short)1)));
        first.Dispose();
    }
}
