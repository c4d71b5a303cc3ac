using System.Globalization;

namespace TxLog.Tests.Crash;

/// <summary>One child run ended by SIGKILL.</summary>
/// <param name="Number">Round number, from 0.</param>
/// <param name="KillDelay">Time between the child's READY line and the kill.</param>
/// <param name="Lines">Every complete line the child printed (READY included), in order.</param>
/// <param name="StandardError">What the child wrote to stderr (for failure messages).</param>
internal sealed record CrashRound(int Number, TimeSpan KillDelay, IReadOnlyList<string> Lines, string StandardError);

/// <summary>
/// What a kill -9 test does around each child run. The harness runs, per round:
/// <see cref="BeforeRound"/>, the child (<see cref="Mode"/> with <see cref="ChildOptions"/>) killed at
/// a random moment, then <see cref="AfterRound"/>, which typically reopens the store in the test
/// process (crash recovery) and checks what the child was promised against what is on disk.
/// </summary>
internal interface ICrashScenario
{
    /// <summary>The child's mode (first argument of TxLog.CrashChild).</summary>
    string Mode { get; }

    /// <summary>Options after the data directory ("--name value" pairs) for a round.</summary>
    IEnumerable<string> ChildOptions(int round);

    /// <summary>Runs before the child of a round starts.</summary>
    void BeforeRound(int round);

    /// <summary>Checks a round after its child was killed; throws (an assertion) on a violation.</summary>
    void AfterRound(CrashRound round);
}

/// <summary>
/// Kill -9 rounds over one data directory: start <c>TxLog.CrashChild</c>, wait for its <c>READY</c>
/// line, let it work for a random delay, SIGKILL it (<see cref="System.Diagnostics.Process.Kill(bool)"/>),
/// collect every whole line it printed, and hand them to the scenario's checker. Delays come from a
/// seeded generator; the seed is printed, and <c>TXLOG_CRASH_SEED</c> replays a run. Reusable: a
/// later test supplies another child mode and another <see cref="ICrashScenario"/>.
/// </summary>
internal sealed class CrashHarness
{
    /// <summary>Environment variable that fixes the seed of the kill delays.</summary>
    public const string SeedVariable = "TXLOG_CRASH_SEED";

    private readonly Random _random;

    public CrashHarness(string dataDirectory, int? seed = null)
    {
        DataDirectory = dataDirectory;
        Seed = seed ?? SeedFromEnvironment() ?? Random.Shared.Next();
        _random = new Random(Seed);
    }

    public string DataDirectory { get; }

    public int Seed { get; }

    /// <summary>Shortest time the child works after READY before the kill.</summary>
    public TimeSpan MinKillDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest time the child works after READY before the kill.</summary>
    public TimeSpan MaxKillDelay { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>How long the child may take to start and print READY.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>The line the child prints when it is ready to be killed.</summary>
    public string ReadyLine { get; init; } = "READY";

    private static int? SeedFromEnvironment() =>
        int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), NumberStyles.Integer, CultureInfo.InvariantCulture, out int seed) ? seed : null;

    /// <summary>Runs <paramref name="rounds"/> rounds of <paramref name="scenario"/>; returns them.</summary>
    public IReadOnlyList<CrashRound> Run(int rounds, ICrashScenario scenario)
    {
        Log($"crash harness: mode '{scenario.Mode}', {rounds} rounds, seed {Seed} (set {SeedVariable}={Seed} to replay)");
        var done = new List<CrashRound>(rounds);
        for (int r = 0; r < rounds; r++)
        {
            scenario.BeforeRound(r);
            CrashRound round = RunRound(r, scenario.Mode, scenario.ChildOptions(r));
            scenario.AfterRound(round);
            done.Add(round);
        }

        return done;
    }

    /// <summary>Starts the child, waits for READY, kills it after a random delay and collects its lines.</summary>
    public CrashRound RunRound(int number, string mode, IEnumerable<string> options)
    {
        var delay = TimeSpan.FromMilliseconds(_random.Next((int)MinKillDelay.TotalMilliseconds, (int)MaxKillDelay.TotalMilliseconds + 1));
        using ChildProcess child = ChildProcess.Start(mode, DataDirectory, options);
        if (!child.WaitForLine(line => line == ReadyLine, StartupTimeout, out _))
        {
            Assert.Fail($"round {number}: the child did not print {ReadyLine} within {StartupTimeout} (exited: {child.HasExited}); stderr: {child.StandardError}");
        }

        // The random moment. A timer by nature: the point is to land anywhere in the child's work.
        Thread.Sleep(delay);
        if (child.HasExited)
        {
            Assert.Fail($"round {number}: the child exited with code {child.ExitCode} before the kill; stderr: {child.StandardError}");
        }

        child.Kill();
        if (!child.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            Assert.Fail($"round {number}: the killed child did not exit within 10 s");
        }

        var round = new CrashRound(number, delay, child.Lines, child.StandardError);
        Log($"round {number}: killed after {delay.TotalMilliseconds:F0} ms, {round.Lines.Count} lines"
            + (child.Unterminated.Length > 0 ? $" (and a cut line '{child.Unterminated}')" : ""));
        return round;
    }

    private static void Log(string message) => TestContext.Progress.WriteLine(message);
}
