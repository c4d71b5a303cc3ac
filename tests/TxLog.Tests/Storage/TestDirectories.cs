namespace TxLog.Tests.Storage;

// Shared with tests/TxLog.Cli.Tests (linked into that project): keep it free of other test types.

/// <summary>A fresh directory under the temp folder, deleted on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "txlog-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a test that failed may still hold a file.
        }
    }
}

/// <summary>
/// A clock the test moves by hand (record timestamps, segment age, retention). Its monotonic timestamp
/// is the real one unless <paramref name="manualTimestamp"/>: then it starts at zero and moves only with
/// <see cref="Advance"/> (for intervals measured on the monotonic clock, such as group members' poll
/// deadlines), and <see cref="StepWallClock"/> moves the wall clock alone, like an NTP step.
/// </summary>
public sealed class ManualClock(DateTimeOffset start, bool manualTimestamp = false) : TimeProvider
{
    private DateTimeOffset _now = start;
    private long _elapsedTicks;

    public override DateTimeOffset GetUtcNow() => _now;

    public override long GetTimestamp() => manualTimestamp ? Interlocked.Read(ref _elapsedTicks) : base.GetTimestamp();

    public override long TimestampFrequency => manualTimestamp ? TimeSpan.TicksPerSecond : base.TimestampFrequency;

    /// <summary>Moves the wall clock and (when manual) the monotonic timestamp together.</summary>
    public void Advance(TimeSpan by)
    {
        _now += by;
        Interlocked.Add(ref _elapsedTicks, by.Ticks);
    }

    /// <summary>Moves only the wall clock, forwards or backwards.</summary>
    public void StepWallClock(TimeSpan by) => _now += by;
}
