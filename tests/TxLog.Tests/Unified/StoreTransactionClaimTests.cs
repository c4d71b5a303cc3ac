using TxLog.Durability;
using TxLog.Mvcc;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Unified;

/// <summary>
/// A StoreTransaction is not thread-safe, but misuse must fail clearly: of a commit and an abort called
/// at once from two threads, exactly one runs and the other throws InvalidOperationException.
/// </summary>
public class StoreTransactionClaimTests
{
    [Test]
    public async Task Commit_and_abort_racing_on_one_transaction_let_exactly_one_through()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None));
        store.CreateTopic("t");
        TransactionEngine engine = store.OpenTransactionEngine(new MvccOptions { SyncMode = LogSyncMode.NoSync, CheckpointInterval = null });
        TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
        await using Producer producer = await TransactionalAsync(store, "claim");
        for (int round = 0; round < 200; round++)
        {
            StoreTransaction tx = store.BeginTransaction(producer);
            map.Put(tx.Maps, round, round);
            await tx.ProduceAsync(new TopicPartition("t", 0), Msg("v" + round));
            using var start = new Barrier(2);
            Task<Exception?> commit = Task.Run(async () =>
            {
                start.SignalAndWait();
                try { await tx.CommitAsync(); return null; } catch (Exception e) { return e; }
            });
            Task<Exception?> abort = Task.Run(async () =>
            {
                start.SignalAndWait();
                try { await tx.AbortAsync(); return null; } catch (Exception e) { return e; }
            });
            Exception?[] outcomes = await Task.WhenAll(commit, abort);
            int through = outcomes.Count(e => e is null);
            Assert.That(through, Is.EqualTo(1), $"round {round}: {string.Join(" | ", outcomes.Select(e => e?.GetType().Name ?? "ok"))}");
            Assert.That(outcomes.Single(e => e is not null), Is.InstanceOf<InvalidOperationException>(), $"round {round}");
            await tx.DisposeAsync(); // a no-op now
            Assert.That(producer.InTransaction, Is.False, $"round {round}: the log side ended too");
        }
    }
}
