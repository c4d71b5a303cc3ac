using TxLog.Durability;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Cli.Tests;

/// <summary>
/// A committed transaction whose COMMIT marker a power loss took: the coordinator's completion record
/// still names it (its markers were not known durable when it was written), so recovery commits the
/// data left open. The read-only views must say so, and <c>abort</c> must not claim to abort it.
/// </summary>
public sealed class LostMarkerTests
{
    // A closed store where 'tx' committed over a-0 and b-0, then a-0's COMMIT marker is cut off and the
    // clean-shutdown marker removed (what a power loss before the marker's fsync leaves).
    private static async Task BuildLostCommitMarkerAsync(string path)
    {
        using (LogStore store = LogStore.Open(path, new LogStoreOptions { Durability = DurabilityMode.None, PreallocateBytes = 0 }))
        {
            store.CreateTopic("a", 1);
            store.CreateTopic("b", 1);
            await using Producer producer = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "tx" });
            await producer.InitTransactionsAsync();
            producer.BeginTransaction();
            await producer.ProduceAsync(new TopicPartition("a", 0), new Message(Scenario.Bytes("a-data")));
            await producer.ProduceAsync(new TopicPartition("b", 0), new Message(Scenario.Bytes("b-data")));
            await producer.CommitTransactionAsync();
        }

        string a0 = Path.Combine(path, "a-0");
        string log = Directory.GetFiles(a0, "*.log").Single();
        var batches = RawLog.Batches(log);
        Assume.That(batches, Has.Count.EqualTo(2), "data batch, COMMIT marker");
        using (var f = new FileStream(log, FileMode.Open, FileAccess.ReadWrite))
        {
            f.SetLength(batches[1].Position);
        }

        foreach (string file in Directory.GetFiles(a0).Where(f => !f.EndsWith(".log", StringComparison.Ordinal)))
        {
            File.Delete(file);
        }

        File.Delete(Path.Combine(path, LogStore.CleanShutdownFileName));
    }

    [Test]
    public async Task Transactions_says_recovery_commits_a_transaction_whose_commit_marker_was_lost()
    {
        using var dir = new TempDirectory();
        await BuildLostCommitMarkerAsync(dir.Path);
        CliResult r = Cli.Run("transactions", dir.Path);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        string[] row = r.Rows().Single(c => c[0] == "tx");

        using (LogStore store = LogStore.Open(dir.Path))
        {
            Assume.That(store.Recovery.Actions, Has.Some.Contains("lost COMMIT marker"), "recovery commits it");
        }

        Assert.That(row[8], Does.StartWith("commit"), r.ToString());
    }

    [Test]
    public async Task Abort_does_not_report_an_abort_when_recovery_commits_the_transaction()
    {
        using var dir = new TempDirectory();
        await BuildLostCommitMarkerAsync(dir.Path);
        CliResult r = Cli.Run("abort", dir.Path, "tx", "--yes");
        Assert.That(r.Out, Does.Not.Contain("Aborted the transaction of 'tx'"), r.ToString());
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Error, Does.Contain("already decided"), r.ToString());
    }
}
