using TxLog.Consuming;
using TxLog.Records;

namespace TxLog.Cli.Tests;

public sealed class AbortTests : ScenarioTest
{
    [Test]
    public void Abort_with_yes_aborts_the_hanging_transaction()
    {
        CliResult r = Cli.RunWith(ClockAfterHangingStart(TimeSpan.FromHours(3)), null, "abort", DataDir, "tx-hanging", "--yes");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Out, Does.Contain("Transaction of 'tx-hanging'").And.Contain("is Ongoing on ")
            .And.Contain($"orders-0 (from offset {Facts.HangingFirstOffset})").And.Contain("open for 3h 00m"));
        Assert.That(r.Out, Does.Contain("Aborted the transaction of 'tx-hanging'"));
        Assert.That(r.Out, Does.Not.Contain("[y/N]"));

        // Read-only views of the files afterwards: no open transaction, the LSO caught up with the HW,
        // and orders-0 has an ABORT marker of the hanging producer.
        Assert.That(Cli.Run("transactions", DataDir, "--open").Out, Does.Contain("No open transactions."));
        string[] orders0 = Cli.Run("groups", DataDir).Rows().Single(c => c[1] == "orders" && c[2] == "0");
        Assert.That(orders0[5], Is.EqualTo(orders0[4]), "LSO = HW once the transaction is aborted");
        string dump = Cli.Run("dump", PartitionDir(Scenario.Topic, 0)).Out;
        Assert.That(dump.Split('\n'), Has.Some.Contains($"producerId: {Facts.HangingProducerId} ").And.Contains("marker: ABORT"));
        Assert.That(Cli.Run("verify", DataDir).ExitCode, Is.EqualTo(0), "the store is left closed and consistent");

        // And the library agrees: a read-committed reader gets past it without its records.
        using LogStore store = LogStore.Open(DataDir, Scenario.Options(TimeProvider.System));
        LogPartition p = store.GetPartition(Scenario.Topic, 0);
        var values = new List<string>();
        using (LogReader reader = p.OpenReader(0, IsolationLevel.ReadCommitted))
        {
            while (reader.TryRead(out Record record))
            {
                values.Add(System.Text.Encoding.UTF8.GetString(record.Value));
            }
        }

        Assert.That(values, Does.Contain("after-hanging").And.Not.Contain("h1").And.Not.Contain("a1").And.Contain("c1"));
        Assert.That(store.ListTransactions().Single(t => t.TransactionalId == "tx-hanging").State,
            Is.AnyOf(Coordination.TransactionState.CompleteAbort, Coordination.TransactionState.Empty));
    }

    [Test]
    public void Abort_without_yes_asks_and_an_answer_of_n_changes_nothing()
    {
        SortedDictionary<string, string> before = Hashes.Of(DataDir);
        CliResult r = Cli.RunWith(null, "n\n", "abort", DataDir, "tx-hanging");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Out, Does.Contain("Abort the transaction of 'tx-hanging'? [y/N]").And.Contain("nothing was changed"));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(before));
        Assert.That(Cli.Run("transactions", DataDir, "--open").Rows().Select(c => c[0]), Is.EqualTo(new[] { "tx-hanging" }));

        // No input at all (stdin closed) is a no too.
        Assert.That(Cli.RunWith(null, null, "abort", DataDir, "tx-hanging").ExitCode, Is.EqualTo(1));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(before));
    }

    [Test]
    public void Abort_with_a_y_answer_aborts()
    {
        CliResult r = Cli.RunWith(null, "y\n", "abort", DataDir, "tx-hanging");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(Cli.Run("transactions", DataDir, "--open").Out, Does.Contain("No open transactions."));
    }

    [Test]
    public void Abort_of_an_id_without_an_open_transaction_changes_nothing()
    {
        SortedDictionary<string, string> before = Hashes.Of(DataDir);
        CliResult r = Cli.Run("abort", DataDir, "tx-committed", "--yes");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Out, Does.Contain("has no open transaction (state CompleteCommit); nothing to abort."));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(before));
    }

    [Test]
    public void Abort_of_an_unknown_id_fails()
    {
        CliResult r = Cli.Run("abort", DataDir, "no-such-id", "--yes");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Error, Does.Contain("transactional id 'no-such-id' is unknown"));
    }

    [Test]
    public void Abort_on_a_store_that_is_open_fails_with_a_clear_message()
    {
        using LogStore store = LogStore.Open(DataDir, Scenario.Options(TimeProvider.System));
        CliResult r = Cli.Run("abort", DataDir, "tx-hanging", "--yes");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.Error, Does.Contain("the store is open by another process").And.Contain("abort needs it closed"));
    }
}
