using TxLog.Tests.Recovery;

namespace TxLog.Tests.Faults;

/// <summary>Per test: a scratch data directory and a <see cref="FaultyFileSystem"/> over the real one.</summary>
public abstract class FaultFixture
{
    internal ScratchDirectory Dir { get; private set; } = null!;

    internal FaultyFileSystem Fs { get; private set; } = null!;

    [SetUp]
    public void CreateDirectory()
    {
        Dir = new ScratchDirectory();
        Fs = new FaultyFileSystem();
    }

    [TearDown]
    public void DeleteDirectory()
    {
        Fs.ReleaseSync(); // a failed test must not leave a thread blocked in a faulty fsync
        Dir.Dispose();
    }
}
