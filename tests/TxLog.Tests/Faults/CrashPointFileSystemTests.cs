using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Faults;

/// <summary>
/// The crash-point file system's model of lost directory operations, with other threads acting at the
/// worst moments: a directory operation not covered by a completed directory fsync must be undone by
/// every "lost" image taken after it, whichever thread did it and whenever. (Two races in the model let
/// an image keep an unsynced deletion while undoing an earlier one, a subset the model means never to
/// produce and journaling file systems do not: an MVCC redo partition then showed a gap between
/// segments after a trim, a false failure of UnifiedCrashPointTests under load.)
/// </summary>
public class CrashPointFileSystemTests
{
    private sealed class Fixture : IDisposable
    {
        private readonly TempDirectory _dir = new();
        private readonly TempDirectory _images = new();

        public Fixture(bool hooked)
        {
            Fs = hooked
                ? new CrashPointFileSystem(_dir.Path, _images.Path, inner => Hook = new InterposedFileSystem(inner)) { LoseDirectoryEntries = true }
                : new CrashPointFileSystem(_dir.Path, _images.Path) { LoseDirectoryEntries = true };
            S0 = Path.Combine(_dir.Path, "s0");
            S1 = Path.Combine(_dir.Path, "s1");
            Other = Path.Combine(_dir.Path, "other");
            Fs.CreateDirectory(Other);
            foreach (string path in new[] { S0, S1, Path.Combine(_dir.Path, "g") })
            {
                IStorageFile f = Fs.OpenFile(path, FileOpenMode.CreateNew);
                f.Write(0, new byte[] { 1, 2, 3 });
                f.Sync();
                if (path.EndsWith('g'))
                {
                    G = f;
                }
                else
                {
                    f.Dispose();
                }
            }

            Fs.SyncDirectory(_dir.Path);
            Fs.OnImage = (op, image) =>
            {
                if (op.Contains("[lost", StringComparison.Ordinal))
                {
                    lock (Lost)
                    {
                        Lost.Add((op, File.Exists(Path.Combine(image, "s0")), File.Exists(Path.Combine(image, "s1"))));
                    }
                }

                OnImage?.Invoke(op);
            };
        }

        public CrashPointFileSystem Fs { get; }

        public string Dir => _dir.Path;

        /// <summary>(operation, s0 present, s1 present) of every image that lost the unsynced directory operations.</summary>
        public List<(string Op, bool S0, bool S1)> Lost { get; } = new();

        public InterposedFileSystem? Hook { get; private set; }

        public string S0 { get; }

        public string S1 { get; }

        public string Other { get; }

        public IStorageFile G { get; } = null!;

        public Action<string>? OnImage { get; set; }

        public List<Exception> Errors { get; } = new();

        // Neither deletion was covered by a directory fsync: every image that loses the unsynced
        // directory operations has both files.
        public void AssertBothDeletionsUndoneInEveryLostImage()
        {
            Assert.That(Errors, Is.Empty);
            Assert.That(Lost, Is.Not.Empty);
            Assert.That(Lost.Where(l => !l.S0 || !l.S1).Select(l => $"{l.Op}: s0 {l.S0}, s1 {l.S1}"), Is.Empty);
        }

        public void Dispose()
        {
            Fs.Disarm();
            G.Dispose();
            _images.Dispose();
            _dir.Dispose();
        }
    }

    [Test]
    public void A_deletion_by_another_thread_while_an_image_is_checked_is_undone_by_later_lost_images()
    {
        using var f = new Fixture(hooked: false);
        Thread? other = null;
        f.OnImage = op =>
        {
            if (other is null && op.StartsWith("write g", StringComparison.Ordinal))
            {
                // While this thread checks an image, another thread deletes s1 (and does not sync).
                other = InterposedFileSystem.StartUntilDoneOrBlocked(() => f.Fs.DeleteFile(f.S1), f.Errors);
            }
        };
        f.Fs.Arm();
        f.Fs.DeleteFile(f.S0);
        f.G.Write(0, new byte[] { 4 });
        other!.Join();
        f.G.Write(1, new byte[] { 5 });
        f.AssertBothDeletionsUndoneInEveryLostImage();
    }

    [Test]
    public void An_image_taken_by_another_thread_right_after_a_deletion_undoes_it()
    {
        using var f = new Fixture(hooked: true);
        Thread? other = null;
        f.Hook!.AfterDelete = path =>
        {
            if (path == f.S1 && other is null)
            {
                // s1 is gone from the directory; another thread takes its images before this one goes on.
                other = InterposedFileSystem.StartUntilDoneOrBlocked(() => f.Fs.SyncDirectory(f.Other), f.Errors);
            }
        };
        f.Fs.Arm();
        f.Fs.DeleteFile(f.S0);
        f.Fs.DeleteFile(f.S1);
        other!.Join();
        f.G.Write(0, new byte[] { 4 });
        f.AssertBothDeletionsUndoneInEveryLostImage();
    }

    [Test]
    public void A_directory_fsync_does_not_cover_a_deletion_made_while_it_runs()
    {
        using var f = new Fixture(hooked: true);
        Thread? other = null;
        f.Hook!.DuringSync = path =>
        {
            if (other is null && path == f.Dir)
            {
                other = InterposedFileSystem.StartUntilDoneOrBlocked(() => f.Fs.DeleteFile(f.S1), f.Errors);
            }
        };
        f.Fs.Arm();
        f.Fs.DeleteFile(f.S0);
        f.Fs.SyncDirectory(f.Dir); // covers s0's deletion; s1's may come after the fsync
        other!.Join();
        int before = f.Lost.Count;
        f.G.Write(0, new byte[] { 4 });
        Assert.That(f.Errors, Is.Empty);
        Assert.That(f.Lost.Skip(before).Select(l => l.S1), Is.EqualTo(new[] { true }), "the image after the sync that loses s1's deletion");
    }
}
