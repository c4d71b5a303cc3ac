namespace TxLog.Cli.Tests;

public sealed class TransactionsTests : ScenarioTest
{
    private static string[] Row(CliResult r, string id) =>
        r.Rows().SingleOrDefault(c => c[0] == id) ?? throw new AssertionException($"no row for '{id}':\n{r}");

    [Test]
    public void Transactions_shows_every_transactional_id_and_the_open_one_with_its_age()
    {
        ManualClock clock = ClockAfterHangingStart(TimeSpan.FromHours(2) + TimeSpan.FromMinutes(5));
        CliResult r = Cli.RunWith(clock, null, "transactions", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());

        // Columns: id, producer id, epoch, state, partitions, started, age, timeout, at next open.
        string[] hanging = Row(r, "tx-hanging");
        Assert.That(hanging[1], Is.EqualTo(Facts.HangingProducerId.ToString()));
        Assert.That(hanging[3], Is.EqualTo("Ongoing"));
        Assert.That(hanging[4], Does.Contain($"orders-0@{Facts.HangingFirstOffset}").And.Contain("__consumer_offsets-0@"));
        Assert.That(hanging[5], Is.EqualTo(Facts.HangingStart.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture)), "the first batch's timestamp (the scenario clock)");
        Assert.That(hanging[6], Is.EqualTo("2h 05m"));
        Assert.That(hanging[7], Is.EqualTo("1m 00s"));
        Assert.That(hanging[8], Is.EqualTo("abort"));

        Assert.That(Row(r, "tx-committed")[3], Is.EqualTo("CompleteCommit"));
        Assert.That(Row(r, "tx-committed")[1], Is.EqualTo(Facts.CommittedProducerId.ToString()));
        Assert.That(Row(r, "tx-aborted")[3], Is.EqualTo("CompleteAbort"));
        Assert.That(Row(r, "tx-aborted")[6], Is.EqualTo("-"), "no age for a finished transaction");
        Assert.That(r.Out, Does.Contain("1 open transaction(s)"));
    }

    [Test]
    public void Open_and_hanging_minutes_filter()
    {
        ManualClock clock = ClockAfterHangingStart(TimeSpan.FromMinutes(90));
        CliResult open = Cli.RunWith(clock, null, "transactions", DataDir, "--open");
        Assert.That(open.Rows().Select(c => c[0]), Is.EqualTo(new[] { "tx-hanging" }), open.ToString());

        CliResult older60 = Cli.RunWith(clock, null, "transactions", DataDir, "--hanging-minutes", "60");
        Assert.That(older60.Rows().Select(c => c[0]), Is.EqualTo(new[] { "tx-hanging" }), older60.ToString());

        CliResult older120 = Cli.RunWith(clock, null, "transactions", DataDir, "--hanging-minutes", "120");
        Assert.That(older120.ExitCode, Is.EqualTo(0));
        Assert.That(older120.Rows(), Is.Empty);
        Assert.That(older120.Out, Does.Contain("No transactions open for 120 minutes or more."));
    }

    [Test]
    public void Transactions_is_read_only()
    {
        SortedDictionary<string, string> before = Hashes.Of(DataDir);
        Assert.That(Cli.Run("transactions", DataDir).ExitCode, Is.EqualTo(0));
        Assert.That(Cli.Run("groups", DataDir).ExitCode, Is.EqualTo(0));
        Assert.That(Cli.Run("topics", DataDir, "--internal").ExitCode, Is.EqualTo(0));
        Assert.That(Hashes.Of(DataDir), Is.EqualTo(before));
    }
}
