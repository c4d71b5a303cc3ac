using TxLog.Durability;
using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Faults;

/// <summary>
/// A file system that can tell what a power loss would leave: it remembers, per file, every write
/// and length change made since that file's last completed fsync (with the bytes they overwrote), and
/// <see cref="CopyDurableImage"/> copies a directory with those undone. Unlike a copy of the live
/// directory (what kill -9 leaves: the page cache survives), the image holds only what was fsynced.
/// A write made while an fsync of its file runs counts as not durable (a crash may come first).
/// Directory entries are taken as durable (the store syncs its directories itself). Thread-safe.
/// </summary>
internal sealed class PowerLossFileSystem(IFileSystem? inner = null) : DelegatingFileSystem(inner)
{
    private readonly object _gate = new();
    private readonly Dictionary<string, List<Undo>> _pending = new(StringComparer.Ordinal);

    private abstract record Undo;

    private sealed record OverwriteUndo(long Position, byte[] Old) : Undo;

    private sealed record LengthUndo(long Length) : Undo;

    private readonly ManualResetEventSlim _syncGate = new(true);
    private volatile Func<string, bool>? _held;

    /// <summary>Makes fsyncs of the matching files wait (in the flusher) until <see cref="ReleaseSyncs"/>.</summary>
    public void HoldSyncs(Func<string, bool> paths)
    {
        _held = paths;
        _syncGate.Reset();
    }

    private readonly ManualResetEventSlim _heldSyncEntered = new(false);

    /// <summary>Waits until an fsync is held (true) or the timeout passes (false).</summary>
    public bool WaitForHeldSync(TimeSpan timeout) => _heldSyncEntered.Wait(timeout);

    /// <summary>Lets held fsyncs run.</summary>
    public void ReleaseSyncs()
    {
        _held = null;
        _syncGate.Set();
    }

    /// <summary>
    /// Store options on this file system without background zero-fill: <paramref name="mode"/>, or by
    /// default Periodic durability with a flush interval longer than any test, so a commit still waits
    /// for its data and decision fsyncs but nothing fsyncs its markers or completion record afterwards
    /// (they stay in the page cache deterministically, without a held fsync).
    /// </summary>
    public LogStoreOptions StoreOptions(DurabilityMode? mode = null)
    {
        LogStoreOptions options = Transactions.Tx.Options(mode ?? DurabilityMode.Periodic);
        if (mode is null)
        {
            options.FlushInterval = TimeSpan.FromHours(1);
        }

        options.FileSystem = this;
        options.PreallocateBytes = 0;
        return options;
    }

    /// <summary>Number of files with writes not yet fsynced.</summary>
    public int FilesWithUnsyncedWrites
    {
        get
        {
            lock (_gate)
            {
                int n = 0;
                foreach (List<Undo> list in _pending.Values)
                {
                    n += list.Count > 0 ? 1 : 0;
                }

                return n;
            }
        }
    }

    /// <summary>Copies <paramref name="from"/> to <paramref name="to"/> as a power loss right now would leave it.</summary>
    public void CopyDurableImage(string from, string to)
    {
        lock (_gate)
        {
            TestRecords.CopyImage(from, to);
            string root = Path.GetFullPath(from);
            foreach ((string path, List<Undo> undos) in _pending)
            {
                string full = Path.GetFullPath(path);
                if (!full.StartsWith(root, StringComparison.Ordinal) || undos.Count == 0)
                {
                    continue;
                }

                string copy = Path.Combine(to, Path.GetRelativePath(root, full));
                if (!File.Exists(copy))
                {
                    continue;
                }

                using var f = new FileStream(copy, FileMode.Open, FileAccess.ReadWrite);
                for (int i = undos.Count - 1; i >= 0; i--)
                {
                    switch (undos[i])
                    {
                        case OverwriteUndo o:
                            f.Position = o.Position;
                            f.Write(o.Old);
                            break;
                        case LengthUndo l:
                            f.SetLength(l.Length);
                            break;
                    }
                }
            }
        }
    }

    /// <summary>The bytes of a file as a power loss right now would leave them (null when it does not exist).</summary>
    public byte[]? DurableBytes(string path)
    {
        lock (_gate)
        {
            if (!File.Exists(path))
            {
                return null;
            }

            byte[] bytes = File.ReadAllBytes(path);
            if (!_pending.TryGetValue(path, out List<Undo>? undos))
            {
                return bytes;
            }

            var m = new MemoryStream();
            m.Write(bytes);
            for (int i = undos.Count - 1; i >= 0; i--)
            {
                switch (undos[i])
                {
                    case OverwriteUndo o:
                        if (m.Length < o.Position + o.Old.Length)
                        {
                            m.SetLength(o.Position + o.Old.Length);
                        }

                        m.Position = o.Position;
                        m.Write(o.Old);
                        break;
                    case LengthUndo l:
                        m.SetLength(l.Length);
                        break;
                }
            }

            return m.ToArray();
        }
    }

    protected override IStorageFile WrapFile(string path, IStorageFile file) => new TrackedFile(this, file);

    public override void DeleteFile(string path)
    {
        lock (_gate)
        {
            base.DeleteFile(path);
            _pending.Remove(path);
        }
    }

    public override void DeleteDirectory(string path)
    {
        lock (_gate)
        {
            base.DeleteDirectory(path);
            string prefix = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            foreach (string file in new List<string>(_pending.Keys))
            {
                if (Path.GetFullPath(file).StartsWith(prefix, StringComparison.Ordinal))
                {
                    _pending.Remove(file); // a file created later at the same path starts clean
                }
            }
        }
    }

    public override void MoveFile(string source, string destination)
    {
        lock (_gate)
        {
            base.MoveFile(source, destination);
            if (_pending.Remove(source, out List<Undo>? undos))
            {
                _pending[destination] = undos;
            }
            else
            {
                _pending.Remove(destination);
            }
        }
    }

    private List<Undo> PendingFor(string path)
    {
        if (!_pending.TryGetValue(path, out List<Undo>? list))
        {
            list = new List<Undo>();
            _pending[path] = list;
        }

        return list;
    }

    private sealed class TrackedFile(PowerLossFileSystem fs, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Write(long position, ReadOnlySpan<byte> data)
        {
            lock (fs._gate)
            {
                List<Undo> undos = fs.PendingFor(Path);
                long length = Inner.Length;
                if (position + data.Length > length)
                {
                    undos.Add(new LengthUndo(length));
                }

                long overlap = Math.Min(length, position + data.Length) - position;
                if (overlap > 0)
                {
                    byte[] old = new byte[overlap];
                    int read = 0;
                    while (read < old.Length)
                    {
                        int n = Inner.Read(position + read, old.AsSpan(read));
                        if (n <= 0)
                        {
                            break;
                        }

                        read += n;
                    }

                    undos.Add(new OverwriteUndo(position, old));
                }

                Inner.Write(position, data);
            }
        }

        public override void SetLength(long length)
        {
            lock (fs._gate)
            {
                long old = Inner.Length;
                if (length < old)
                {
                    // Shrinking: bring the cut bytes back if the cut is lost.
                    byte[] cut = new byte[old - length];
                    Inner.Read(length, cut);
                    fs.PendingFor(Path).Add(new OverwriteUndo(length, cut));
                }
                else
                {
                    fs.PendingFor(Path).Add(new LengthUndo(old));
                }

                Inner.SetLength(length);
            }
        }

        public override void Sync()
        {
            // What this fsync covers is fixed when it starts: a held fsync released later still covers
            // only the writes made before it was called.
            int covered;
            lock (fs._gate)
            {
                covered = fs.PendingFor(Path).Count;
            }

            if (fs._held is { } held && held(Path))
            {
                fs._heldSyncEntered.Set();
                fs._syncGate.Wait();
            }

            Inner.Sync();
            lock (fs._gate)
            {
                List<Undo> undos = fs.PendingFor(Path);
                undos.RemoveRange(0, Math.Min(covered, undos.Count));
            }
        }
    }
}
