using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Shutdown;

/// <summary>
/// For close-timeout tests: holds the fsyncs of the files <see cref="Hold"/> selects until
/// <see cref="Release"/> (a gate, no sleeps), and once <see cref="StartWatching"/> was called records
/// every operation that changes a file or directory (writes, truncations, fsyncs, creates, deletes,
/// renames) which reaches the real file system. A store whose close returned must not cause any.
/// Thread-safe.
/// </summary>
internal sealed class ZombieWatchFileSystem(IFileSystem? inner = null) : DelegatingFileSystem(inner)
{
    private readonly ManualResetEventSlim _released = new(true);
    private readonly SemaphoreSlim _held = new(0);
    private readonly List<string> _late = [];
    private Func<string, bool> _hold = static _ => false;
    private volatile bool _watching;
    private int _openFiles;

    /// <summary>Files opened through this file system and not disposed yet.</summary>
    public int OpenFiles => Volatile.Read(ref _openFiles);

    /// <summary>From now on, fsyncs of files matching <paramref name="paths"/> wait for <see cref="Release"/>.</summary>
    public void Hold(Func<string, bool> paths)
    {
        _released.Reset();
        Volatile.Write(ref _hold, paths);
    }

    /// <summary>Lets held fsyncs (and later ones) go on.</summary>
    public void Release()
    {
        Volatile.Write(ref _hold, static _ => false);
        _released.Set();
    }

    /// <summary>Waits until an fsync is held.</summary>
    public bool WaitForHeldSync(TimeSpan timeout) => _held.Wait(timeout);

    /// <summary>From now on, every change that reaches the real file system is recorded in <see cref="LateChanges"/>.</summary>
    public void StartWatching() => _watching = true;

    /// <summary>Changes made since <see cref="StartWatching"/> ("operation path").</summary>
    public IReadOnlyList<string> LateChanges
    {
        get
        {
            lock (_late)
            {
                return [.. _late];
            }
        }
    }

    private void Changing(string operation, string path)
    {
        if (_watching)
        {
            lock (_late)
            {
                _late.Add(operation + " " + path);
            }
        }
    }

    private void MaybeHold(string path)
    {
        if (Volatile.Read(ref _hold)(path))
        {
            _held.Release();
            if (!_released.Wait(TimeSpan.FromSeconds(60)))
            {
                throw new TimeoutException("The held fsync was never released.");
            }
        }
    }

    public override IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        if (mode is FileOpenMode.CreateNew or FileOpenMode.OpenOrCreate)
        {
            Changing("create", path);
        }

        var file = new File(this, base.OpenFile(path, mode));
        Interlocked.Increment(ref _openFiles);
        return file;
    }

    public override void CreateDirectory(string path)
    {
        Changing("mkdir", path);
        base.CreateDirectory(path);
    }

    public override void DeleteFile(string path)
    {
        Changing("delete", path);
        base.DeleteFile(path);
    }

    public override void DeleteDirectory(string path)
    {
        Changing("rmdir", path);
        base.DeleteDirectory(path);
    }

    public override void MoveFile(string source, string destination)
    {
        Changing("rename", source + " -> " + destination);
        base.MoveFile(source, destination);
    }

    public override void MoveDirectory(string source, string destination)
    {
        Changing("rename", source + " -> " + destination);
        base.MoveDirectory(source, destination);
    }

    public override void SyncDirectory(string path)
    {
        Changing("fsync-dir", path);
        base.SyncDirectory(path);
    }

    private sealed class File(ZombieWatchFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Write(long position, ReadOnlySpan<byte> data)
        {
            owner.Changing("write", Path);
            Inner.Write(position, data);
        }

        public override void SetLength(long length)
        {
            owner.Changing("truncate", Path);
            Inner.SetLength(length);
        }

        public override void Sync()
        {
            owner.Changing("fsync", Path); // recorded when it starts: a held fsync began before the close
            owner.MaybeHold(Path);
            Inner.Sync();
        }

        private int _disposed;

        public override void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Interlocked.Decrement(ref owner._openFiles);
            }

            base.Dispose();
        }
    }
}
