namespace TxLog.Storage;

/// <summary>
/// The file system a store works through: forwards to the configured one and counts the operations
/// that change files (writes, truncations, fsyncs, creates, deletes, renames) while they run. The
/// store's close <see cref="Seal"/>s it: from then on every such operation throws
/// <see cref="ObjectDisposedException"/> before it touches anything, whichever thread or internal
/// writer tries it (a commit's markers after its fsync returned, a checkpoint, a timer, a flusher).
/// Once the operations that were already running have returned, nothing of this store can change the
/// directory any more, and only then may its lock be released (<see cref="WhenDrained"/>): another
/// store opening it never races a writer of this one. Reads and listings are not counted. Thread-safe.
/// </summary>
internal sealed class SealableFileSystem(IFileSystem inner) : IFileSystem
{
    private const long SealedBit = 1L << 62;

    // Low bits: changing operations running now. SealedBit: no new one may start.
    private long _state;
    private readonly object _drainLock = new();
    private readonly ManualResetEventSlim _drainedEvent = new(false);
    private bool _drained;       // guarded by _drainLock
    private Action? _onDrained;  // guarded by _drainLock

    /// <summary>The configured file system, for the close's own last writes after <see cref="Seal"/>.</summary>
    public IFileSystem Inner { get; } = inner;

    /// <summary>True once <see cref="Seal"/> was called.</summary>
    public bool IsSealed => (Volatile.Read(ref _state) & SealedBit) != 0;

    /// <summary>
    /// Refuses every later changing operation. Operations already running finish; the drain is
    /// reported when the last of them returns (at once when none runs).
    /// </summary>
    public void Seal()
    {
        long before = Interlocked.Or(ref _state, SealedBit);
        if ((before & SealedBit) == 0 && (before & ~SealedBit) == 0)
        {
            Drained();
        }
    }

    /// <summary>Waits until the store is sealed and no changing operation runs; false on timeout.</summary>
    public bool WaitForDrain(TimeSpan timeout) => _drainedEvent.Wait(timeout);

    /// <summary>Runs <paramref name="action"/> once drained: at once when already drained, else on the thread whose operation is the last to return.</summary>
    public void WhenDrained(Action action)
    {
        lock (_drainLock)
        {
            if (!_drained)
            {
                _onDrained += action;
                return;
            }
        }

        action();
    }

    private void Enter()
    {
        if ((Interlocked.Increment(ref _state) & SealedBit) != 0)
        {
            Exit();
            throw new ObjectDisposedException(nameof(LogStore), "The store is closed: it changes no file any more.");
        }
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _state) == SealedBit)
        {
            Drained(); // sealed and nothing running: a refused Enter can get here too (idempotent)
        }
    }

    private void Drained()
    {
        Action? actions;
        lock (_drainLock)
        {
            if (_drained)
            {
                return;
            }

            _drained = true;
            actions = _onDrained;
            _onDrained = null;
            _drainedEvent.Set();
        }

        actions?.Invoke();
    }

    /// <inheritdoc/>
    public IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        if (mode is FileOpenMode.ReadOnly or FileOpenMode.OpenExisting)
        {
            // Opening an existing file changes nothing; its writes are counted by the wrapper.
            return new File(this, Inner.OpenFile(path, mode));
        }

        Enter();
        try
        {
            return new File(this, Inner.OpenFile(path, mode));
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public bool FileExists(string path) => Inner.FileExists(path);

    /// <inheritdoc/>
    public bool DirectoryExists(string path) => Inner.DirectoryExists(path);

    /// <inheritdoc/>
    public void CreateDirectory(string path)
    {
        Enter();
        try
        {
            Inner.CreateDirectory(path);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public void DeleteFile(string path)
    {
        Enter();
        try
        {
            Inner.DeleteFile(path);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public void DeleteDirectory(string path)
    {
        Enter();
        try
        {
            Inner.DeleteDirectory(path);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public void MoveFile(string source, string destination)
    {
        Enter();
        try
        {
            Inner.MoveFile(source, destination);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public void MoveDirectory(string source, string destination)
    {
        Enter();
        try
        {
            Inner.MoveDirectory(source, destination);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public string[] GetFiles(string directory, string searchPattern) => Inner.GetFiles(directory, searchPattern);

    /// <inheritdoc/>
    public string[] GetDirectories(string directory) => Inner.GetDirectories(directory);

    /// <inheritdoc/>
    public void SyncDirectory(string path)
    {
        Enter();
        try
        {
            Inner.SyncDirectory(path);
        }
        finally
        {
            Exit();
        }
    }

    /// <inheritdoc/>
    public IDisposable? TryLock(string path) => Inner.TryLock(path);

    private sealed class File(SealableFileSystem owner, IStorageFile inner) : IStorageFile
    {
        public string Path => inner.Path;

        public long Length => inner.Length;

        public void Write(long position, ReadOnlySpan<byte> data)
        {
            owner.Enter();
            try
            {
                inner.Write(position, data);
            }
            finally
            {
                owner.Exit();
            }
        }

        public int Read(long position, Span<byte> buffer) => inner.Read(position, buffer);

        public void Sync()
        {
            owner.Enter();
            try
            {
                inner.Sync();
            }
            finally
            {
                owner.Exit();
            }
        }

        public void SetLength(long length)
        {
            owner.Enter();
            try
            {
                inner.SetLength(length);
            }
            finally
            {
                owner.Exit();
            }
        }

        public void Dispose() => inner.Dispose();
    }
}
