using TxLog.Durability;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using TxLog.Tests.Transactions;

namespace TxLog.Tests.Crash;

/// <summary>
/// The crash-point runner shared by the internal-log and unified crash-point tests: set a store up,
/// arm a <see cref="CrashPointFileSystem"/>, run one operation, and reopen and check the power-loss
/// image taken before and after every file-system step (each image is deleted once checked).
/// </summary>
internal static class CrashPoints
{
    /// <summary>Small segments and index intervals, no preallocation; on <paramref name="fs"/> when given.</summary>
    public static LogStoreOptions Options(CrashPointFileSystem? fs, DurabilityMode mode = DurabilityMode.GroupCommit)
    {
        LogStoreOptions o = Tx.Options(mode);
        o.PreallocateBytes = 0;
        o.SegmentBytes = 2048;
        o.IndexIntervalBytes = 256;
        if (fs is not null)
        {
            o.FileSystem = fs;
        }

        return o;
    }

    /// <summary>Runs <paramref name="operation"/> with a power cut after every step; <paramref name="check"/> lists each image's problems.</summary>
    public static async Task RunAsync(string what, Func<LogStore, Task> setup, Func<LogStore, LogStoreOptions, Task> operation, Func<LogStore, List<string>> check,
        DurabilityMode mode = DurabilityMode.GroupCommit, Action<string>? after = null, Action? beforeImage = null)
    {
        // Each image is checked inside the file-system step that took it, while the other threads' steps
        // wait: pool threads pile up blocked, and the image store's own asynchronous close would starve
        // (30 s timeouts in CI). Let the pool grow at once instead of one thread at a time.
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 64), io);
        using var dir = new TempDirectory();
        using var images = new TempDirectory();
        var all = new List<string>();
        var fs = new CrashPointFileSystem(dir.Path, images.Path) { LoseDirectoryEntries = true, BeforeImage = beforeImage };
        fs.OnImage = (op, image) =>
        {
            try
            {
                // The image store closes while the other threads' steps wait (see above); on a loaded
                // machine (load average 6-8) its close took more than the default 30 s twice, a harness
                // effect, so it gets longer. A close that fails still counts as a problem.
                LogStoreOptions imageOptions = Options(null, mode);
                imageOptions.CloseTimeout = TimeSpan.FromMinutes(3);
                using LogStore s = LogStore.Open(image, imageOptions);
                foreach (string p in check(s))
                {
                    all.Add($"{what}: after '{op}': {p}");
                }
            }
            catch (Exception e)
            {
                all.Add($"{what}: after '{op}': open/check threw {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        };
        LogStoreOptions options = Options(fs, mode);
        LogStore store = LogStore.Open(dir.Path, options);
        try
        {
            await setup(store);
            fs.Arm();
            await operation(store, options);
        }
        finally
        {
            try
            {
                store.Dispose();
            }
            finally
            {
                fs.Disarm();
                ThreadPool.SetMinThreads(workers, io);
            }
        }

        after?.Invoke(dir.Path);
        TestContext.Progress.WriteLine($"{what}: {fs.Steps.Count} crash points");
        Assert.That(all.Take(20), Is.Empty, $"{all.Count} problems");
    }
}
