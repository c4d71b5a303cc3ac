using TxLog.Tests.Recovery;

namespace TxLog.Tests.Crash;

/// <summary>
/// DESIGN.md §3: an append acknowledged in fsync (group commit) mode survives kill -9. A child process
/// appends from several writers and is SIGKILLed at a random moment, five times over one directory;
/// after each kill the store is recovered in this process and checked (see <see cref="AppendCrashScenario"/>).
/// </summary>
[TestFixture]
[Category("Crash")]
public sealed class KillNineTests
{
    [Test]
    public void AcknowledgedAppendsSurviveKillNineAndTheNextRunAppendsAfterThem()
    {
        using var dir = new ScratchDirectory();
        var scenario = new AppendCrashScenario(dir.Path);
        var harness = new CrashHarness(dir.Path);
        IReadOnlyList<CrashRound> rounds = harness.Run(5, scenario);

        Assert.That(rounds, Has.Count.EqualTo(5));
        Assert.That(scenario.Acknowledged, Is.GreaterThan(0), $"the children acknowledged appends before being killed (seed {harness.Seed})");
    }
}
