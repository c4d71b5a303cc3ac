using TxLog.Tests.Recovery;

namespace TxLog.Tests.Crash;

/// <summary>Kill -9 of a transactional producer and of the MVCC engine, several rounds each.</summary>
[TestFixture]
[Category("Crash")]
public sealed class TransactionalKillNineTests
{
    [Test]
    public void Read_committed_sees_exactly_the_acknowledged_transactions_after_every_kill()
    {
        using var dir = new ScratchDirectory();
        var scenario = new TransactionCrashScenario(dir.Path);
        var harness = new CrashHarness(dir.Path);
        harness.Run(4, scenario);
        Assert.That(scenario.Committed, Is.GreaterThan(0), $"the children committed before being killed (seed {harness.Seed})");
    }

    [Test]
    public void Every_acknowledged_mvcc_commit_survives_kill_nine_and_nothing_else_is_half_there()
    {
        using var dir = new ScratchDirectory();
        var scenario = new MvccCrashScenario(dir.Path);
        var harness = new CrashHarness(dir.Path);
        harness.Run(4, scenario);
        Assert.That(scenario.Acknowledged, Is.GreaterThan(0), $"the children committed before being killed (seed {harness.Seed})");
    }

    [Test]
    public void An_exactly_once_pipeline_neither_duplicates_nor_skips_across_kills()
    {
        using var dir = new ScratchDirectory();
        var scenario = new PipelineCrashScenario(dir.Path, orders: 30_000);
        var harness = new CrashHarness(dir.Path);
        harness.Run(5, scenario);
        Assert.That(scenario.Committed, Is.GreaterThan(0), $"the pipeline made progress (seed {harness.Seed})");
    }
}
