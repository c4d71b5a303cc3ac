namespace TxLog.Cli.Tests;

public sealed class GroupsTests : ScenarioTest
{
    [Test]
    public void Groups_counts_only_committed_offsets_and_shows_lag_against_the_HW_and_the_LSO()
    {
        CliResult r = Cli.Run("groups", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());

        // Columns: group, topic, partition, committed, HW, LSO, lag (HW), lag (LSO).
        List<string[]> rows = r.Rows();
        Assert.That(rows, Has.Count.EqualTo(2), r.ToString());

        // orders-0: committed outside a transaction (5); the aborted transaction's 9 and the open one's 7 do not count.
        string[] orders0 = rows.Single(c => c[1] == "orders" && c[2] == "0");
        long hw = Facts.Orders0End;
        long lso = Facts.HangingFirstOffset;
        Assert.That(orders0, Is.EqualTo(new[]
        {
            Scenario.Group, "orders", "0", Scenario.PlainCommittedOffset.ToString(), hw.ToString(), lso.ToString(),
            (hw - Scenario.PlainCommittedOffset).ToString(), (lso - Scenario.PlainCommittedOffset).ToString(),
        }));
        Assert.That(lso, Is.LessThan(hw), "the open transaction holds the LSO back");

        // orders-1: committed in a committed transaction; no open transaction there, so LSO = HW.
        string[] orders1 = rows.Single(c => c[1] == "orders" && c[2] == "1");
        Assert.That(orders1[3], Is.EqualTo(Scenario.TransactionalOffset.ToString()));
        Assert.That(orders1[4], Is.EqualTo(Facts.Orders1End.ToString()));
        Assert.That(orders1[5], Is.EqualTo(orders1[4]));

        Assert.That(r.Out, Does.Contain($"pending: group '{Scenario.Group}' orders-0 offset {Scenario.HangingOffset} sent to the open transaction of producer {Facts.HangingProducerId}"));
    }

    [Test]
    public void Group_filter()
    {
        CliResult other = Cli.Run("groups", DataDir, "--group", "nobody");
        Assert.That(other.ExitCode, Is.EqualTo(0));
        Assert.That(other.Out, Does.Contain("Group 'nobody' has no committed offsets."));
        Assert.That(Cli.Run("groups", DataDir, "--group", Scenario.Group).Rows(), Has.Count.EqualTo(2));
    }
}
