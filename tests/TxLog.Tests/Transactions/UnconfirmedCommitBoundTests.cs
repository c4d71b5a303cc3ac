using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Transactions;

/// <summary>
/// The list of commits whose markers may not be durable yet rides in every record of the id, so it
/// must stay bounded even when nothing fsyncs markers for a long time (Periodic durability).
/// </summary>
public class UnconfirmedCommitBoundTests
{
    [Test]
    public async Task Many_commits_over_different_partitions_between_periodic_flushes_keep_working()
    {
        using var dir = new TempDirectory();
        LogStoreOptions options = Tx.Options(DurabilityMode.Periodic);
        options.FlushInterval = TimeSpan.FromHours(1); // no periodic fsync during the test
        options.MaxBatchBytes = 4096;                   // an unbounded list outgrows this after about 90 commits
        using LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t", 300);
        await using Producer p = await Tx.TransactionalAsync(store, "tx");
        for (int i = 0; i < 150; i++)
        {
            p.BeginTransaction();
            await p.ProduceAsync(new TopicPartition("t", i), Tx.Msg("x"));
            await p.ProduceAsync(new TopicPartition("t", 150 + i), Tx.Msg("x"));
            await p.CommitTransactionAsync();
        }

        Assert.That(store.Coordinator.UnconfirmedCommitCount("tx"), Is.LessThanOrEqualTo(Coordination.TransactionCoordinator.MaxUnconfirmedCommits));
        await using Producer again = await Tx.TransactionalAsync(store, "tx"); // the id is usable
        again.BeginTransaction();
        await again.ProduceAsync(new TopicPartition("t", 0), Tx.Msg("y"));
        await again.CommitTransactionAsync();
    }
}
