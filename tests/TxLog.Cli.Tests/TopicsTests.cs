namespace TxLog.Cli.Tests;

public sealed class TopicsTests : ScenarioTest
{
    [Test]
    public void Topics_lists_each_partition_with_log_start_end_segments_and_size()
    {
        CliResult r = Cli.Run("topics", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        List<string[]> rows = r.Rows();
        Assert.That(rows.Select(c => c[0] + "-" + c[1]), Is.EqualTo(new[] { "events-0", "orders-0", "orders-1" }), r.ToString());

        string[] orders0 = rows.Single(c => c[0] == "orders" && c[1] == "0");
        long size = Segments(Scenario.Topic, 0).Sum(s => new FileInfo(s).Length);
        Assert.That(orders0[2..], Is.EqualTo(new[] { "0", Facts.Orders0End.ToString(), Facts.Orders0Segments.ToString(), size.ToString() }));
        string[] orders1 = rows.Single(c => c[0] == "orders" && c[1] == "1");
        Assert.That(orders1[3], Is.EqualTo(Facts.Orders1End.ToString()));
    }

    [Test]
    public void Internal_topics_are_listed_only_with_the_internal_option()
    {
        Assert.That(Cli.Run("topics", DataDir).Out, Does.Not.Contain("__transaction_state").And.Not.Contain("__consumer_offsets"));
        CliResult r = Cli.Run("topics", DataDir, "--internal");
        Assert.That(r.Rows().Select(c => c[0]), Does.Contain("__transaction_state").And.Contain("__consumer_offsets").And.Contain("orders"));
    }

    [Test]
    public void The_log_end_of_a_partition_with_a_torn_tail_is_the_end_of_its_last_whole_batch()
    {
        string last = Segments(Scenario.Topic, 1)[^1];
        using (var stream = new FileStream(last, FileMode.Append))
        {
            stream.Write([0, 0, 0, 0, 0, 0, 0, 99, 0, 0, 1, 0, 255]);
        }

        CliResult r = Cli.Run("topics", DataDir);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        Assert.That(r.Rows().Single(c => c[0] == "orders" && c[1] == "1")[3], Is.EqualTo(Facts.Orders1End.ToString()));
        Assert.That(r.Out, Does.Contain("note: orders-1").And.Contain("torn tail"));
    }
}
