using TxLog.Tests.Recovery;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Crash;

/// <summary>
/// DESIGN.md §2.1: one process owns a data directory (an exclusive lock file); a second opener, in
/// the same process or another, gets a clear error naming the directory; once the owner closes, the
/// directory opens again.
/// </summary>
[TestFixture]
public sealed class DirectoryLockTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    private ScratchDirectory _dir = null!;

    [SetUp]
    public void CreateDirectory() => _dir = new ScratchDirectory();

    [TearDown]
    public void DeleteDirectory() => _dir.Dispose();

    [Test]
    public void A_read_only_probe_holding_the_lock_for_an_instant_does_not_make_an_open_fail()
    {
        // Regression: the txlog tool checks whether a store is open by taking a shared lock on .lock for
        // an instant; an open at that instant got LogDirectoryLockedException (9 of 100 in a loop).
        using (LogStore.Open(_dir.Path))
        {
        }

        string lockFile = Path.Combine(_dir.Path, LogStore.LockFileName);
        using var held = new ManualResetEventSlim(false);
        var probe = Task.Run(() =>
        {
            using SafeFileHandleHolder handle = new(File.OpenHandle(lockFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            held.Set();
            Thread.Sleep(60);
        });
        Assert.That(held.Wait(Limit), Is.True);
        using LogStore store = LogStore.Open(_dir.Path); // retries while the probe holds its shared lock
        Assert.That(probe.Wait(Limit), Is.True);
    }

    private sealed class SafeFileHandleHolder(Microsoft.Win32.SafeHandles.SafeFileHandle handle) : IDisposable
    {
        public void Dispose() => handle.Dispose();
    }

    [Test]
    public void ASecondOpenInTheSameProcessIsRefusedUntilTheFirstStoreCloses()
    {
        using (LogStore first = LogStore.Open(_dir.Path))
        {
            first.CreateTopic(Topic);
            LogDirectoryLockedException? e = Assert.Throws<LogDirectoryLockedException>(() => LogStore.Open(_dir.Path));
            Assert.That(e!.Directory, Is.EqualTo(_dir.Path));
            Assert.That(e.Message, Does.Contain(_dir.Path));

            // The refused open did not disturb the owner.
            first.GetPartition(Topic, 0).Append(new global::TxLog.Records.Message(Bytes("still mine")));
        }

        using LogStore second = LogStore.Open(_dir.Path);
        Assert.That(ReadAll(second.GetPartition(Topic, 0)), Has.Count.EqualTo(1));
    }

    [Test]
    public void AnOpenIsRefusedWhileAnotherProcessHoldsTheDirectory()
    {
        using (ChildProcess child = ChildProcess.Start("hold-lock", _dir.Path, []))
        {
            Assert.That(child.WaitForLine(l => l == "READY", Limit, out _), Is.True, "the child opened the store; stderr: " + child.StandardError);

            LogDirectoryLockedException? e = Assert.Throws<LogDirectoryLockedException>(() => LogStore.Open(_dir.Path));
            Assert.That(e!.Message, Does.Contain(_dir.Path));

            child.CloseInput(); // the child closes its store and exits
            Assert.That(child.WaitForExit(Limit), Is.True, "the child exited");
            Assert.That(child.ExitCode, Is.Zero, "the child closed its store cleanly; stderr: " + child.StandardError);
        }

        using LogStore store = LogStore.Open(_dir.Path);
        Assert.That(store.Recovery.CleanShutdown, Is.True);
    }

    [Test]
    public void AnotherProcessIsRefusedWhileThisProcessHoldsTheDirectory()
    {
        using (LogStore store = LogStore.Open(_dir.Path))
        {
            using ChildProcess child = ChildProcess.Start("hold-lock", _dir.Path, []);
            Assert.That(child.WaitForLine(l => l.StartsWith("LOCKED ", StringComparison.Ordinal), Limit, out string? line), Is.True,
                "the child reported the lock; lines: " + string.Join(" | ", child.Lines) + "; stderr: " + child.StandardError);
            Assert.That(line, Does.Contain(_dir.Path));
            Assert.That(child.WaitForExit(Limit), Is.True);
            Assert.That(child.ExitCode, Is.EqualTo(4), "exit code of a refused open");
        }

        // A killed owner does not keep the directory: the lock goes with the process.
        using (ChildProcess child = ChildProcess.Start("hold-lock", _dir.Path, []))
        {
            Assert.That(child.WaitForLine(l => l == "READY", Limit, out _), Is.True, "stderr: " + child.StandardError);
            child.Kill();
            Assert.That(child.WaitForExit(Limit), Is.True);
        }

        using LogStore reopened = LogStore.Open(_dir.Path);
        Assert.That(reopened.Recovery.CleanShutdown, Is.False, "the killed owner left no clean-shutdown marker");
    }
}
