using TxLog.Mvcc;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Crash;

/// <summary>
/// An MVCC checkpoint's redo trim (oldest segment first, one directory fsync at the end) while another
/// thread takes a crash-point image between two segment deletions. A power cut can lose both unsynced
/// deletions or neither, never the older one alone: no image may show a gap between redo segments.
/// (The crash-point model once recorded a deletion only after the file was gone, so an image taken in
/// between kept the newer deletion and undid the older one: "segment starts at 66 but the previous
/// segment ends at 24" in the unified crash-point test under load.)
/// </summary>
public class RedoTrimRaceCrashPointTests
{
    private static readonly MvccOptions Mvcc = new() { SyncMode = LogSyncMode.Instant, CheckpointInterval = null, CheckpointRedoBytes = long.MaxValue };

    private const int Keys = 60;

    [Test]
    public async Task An_image_taken_by_another_thread_in_the_middle_of_a_redo_trim_has_no_gap()
    {
        using var dir = new TempDirectory();
        using var images = new TempDirectory();
        InterposedFileSystem? hook = null;
        var fs = new CrashPointFileSystem(dir.Path, images.Path, inner => hook = new InterposedFileSystem(inner)) { LoseDirectoryEntries = true };
        var problems = new List<string>();
        int checkedImages = 0;
        fs.OnImage = (op, image) =>
        {
            Interlocked.Increment(ref checkedImages);
            try
            {
                using LogStore s = LogStore.Open(image, CrashPoints.Options(null));
                TransactionEngine e = s.OpenTransactionEngine(Mvcc);
                TransactionalMap<int, long> m = e.OpenMap("m", Serializers.Int32, Serializers.Int64);
                using MvccTransaction tx = e.BeginTransaction();
                for (int i = 0; i < Keys; i++)
                {
                    if (!m.TryGet(tx, i, out long v) || v != 2000 + i)
                    {
                        lock (problems)
                        {
                            problems.Add($"after '{op}': key {i} wrong");
                        }

                        break;
                    }
                }
            }
            catch (Exception e)
            {
                lock (problems)
                {
                    problems.Add($"after '{op}': open threw {e.GetType().Name}: {e.Message.Split('\n')[0]}");
                }
            }
        };

        string redo = Path.Combine(dir.Path, TransactionEngine.RedoTopic + "-0");
        LogStore store = LogStore.Open(dir.Path, CrashPoints.Options(fs));
        Thread? other = null;
        var errors = new List<Exception>();
        int redoLogsDeleted = 0;
        try
        {
            store.CreateTopic("a");
            TransactionEngine engine = store.OpenTransactionEngine(Mvcc);
            TransactionalMap<int, long> map = engine.OpenMap("m", Serializers.Int32, Serializers.Int64);
            for (int round = 0; round < 3; round++)
            {
                for (int i = 0; i < Keys; i++)
                {
                    using MvccTransaction tx = engine.BeginTransaction();
                    map.Put(tx, i, (round * 1000) + i);
                    tx.Commit();
                }

                if (round < 2)
                {
                    await engine.CheckpointAsync(); // the third checkpoint trims the redo of round 1
                }
            }

            hook!.AfterDelete = path =>
            {
                if (Path.GetDirectoryName(path) == redo && path.EndsWith(".log", StringComparison.Ordinal)
                    && Interlocked.Increment(ref redoLogsDeleted) == 2)
                {
                    // The second segment's file is gone, its deletion not yet recorded: another thread's step now.
                    other = InterposedFileSystem.StartUntilDoneOrBlocked(() => fs.SyncDirectory(Path.Combine(dir.Path, "a-0")), errors);
                }
            };
            fs.Arm();
            await engine.CheckpointAsync();
            other?.Join();
            engine.Dispose();
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
            }
        }

        Assert.That(redoLogsDeleted, Is.GreaterThanOrEqualTo(2), "the trim deletes two redo segments or more");
        Assert.That(other, Is.Not.Null);
        Assert.That(errors, Is.Empty);
        Assert.That(checkedImages, Is.GreaterThan(10));
        Assert.That(problems.Take(10), Is.Empty, $"{problems.Count} problems");
    }
}
