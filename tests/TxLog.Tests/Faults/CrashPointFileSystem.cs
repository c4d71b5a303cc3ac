using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Faults;

/// <summary>
/// Records the file-system operations of one structural operation and, while armed, takes power-loss
/// images before the first and after every mutating operation, so a test can reopen the store as a
/// power cut at each step leaves it. Each image drops what was not fsynced
/// (<see cref="PowerLossFileSystem"/>); with <see cref="LoseDirectoryEntries"/>, a second image per
/// step also undoes the directory operations (creates, deletes, renames) made since their directory
/// was last fsynced, as POSIX allows.
/// <para>
/// All of them at once, in every directory: the model does not produce a subset (a later deletion
/// durable and an earlier one lost). A directory operation is done and recorded under the image lock,
/// so every image has it recorded or not done yet; a directory fsync covers only the operations
/// recorded before it started; and while <see cref="OnImage"/> checks an image, the other threads'
/// steps wait (only the checking thread's own operations are not steps).
/// </para>
/// </summary>
internal sealed class CrashPointFileSystem : DelegatingFileSystem
{
    private readonly PowerLossFileSystem _power;
    private readonly string _root;
    private readonly string _images;
    private readonly object _gate = new();
    private readonly List<DirOp> _dirOps = new();
    private volatile bool _armed;

    // The thread running OnImage for this instance (its own file operations are not steps).
    [ThreadStatic]
    private static CrashPointFileSystem? t_checking;

    private bool Recording => _armed && t_checking != this;

    private abstract record DirOp(string Directory);

    private sealed record CreateOp(string Path) : DirOp(System.IO.Path.GetDirectoryName(Path)!);

    private sealed record DeleteOp(string Path, byte[] Bytes) : DirOp(System.IO.Path.GetDirectoryName(Path)!);

    private sealed record RenameOp(string Source, string Destination, byte[]? OldDestination) : DirOp(System.IO.Path.GetDirectoryName(Destination)!);

    private sealed record MkdirOp(string Path) : DirOp(System.IO.Path.GetDirectoryName(Path)!);

    private sealed record RmdirOp(string Path, Dictionary<string, byte[]> Files) : DirOp(System.IO.Path.GetDirectoryName(Path)!);

    public CrashPointFileSystem(string root, string images)
        : this(new PowerLossFileSystem(), root, images)
    {
    }

    /// <summary>
    /// For tests of this model: <paramref name="between"/> wraps the power-loss layer and sits between it
    /// and this one, so a test can act after an operation was done and before this layer recorded it.
    /// </summary>
    internal CrashPointFileSystem(string root, string images, Func<IFileSystem, IFileSystem> between)
        : this(new PowerLossFileSystem(), root, images, between)
    {
    }

    private CrashPointFileSystem(PowerLossFileSystem power, string root, string images, Func<IFileSystem, IFileSystem>? between = null)
        : base(between is null ? power : between(power))
    {
        _power = power;
        _root = Path.GetFullPath(root);
        _images = images;
    }

    /// <summary>Also take images that lose the directory operations not yet made durable.</summary>
    public bool LoseDirectoryEntries { get; set; }

    /// <summary>When set, each image is handed to it at once (on the thread of the operation) and deleted after.</summary>
    public Action<string, string>? OnImage { get; set; }

    /// <summary>
    /// When set, called just before each image is copied (under the image lock): a test reads there
    /// what was acknowledged, since everything acknowledged before the copy must be in the image (other
    /// threads go on while <see cref="OnImage"/> checks one).
    /// </summary>
    public Action? BeforeImage { get; set; }

    /// <summary>(operation, image directory) for every image taken while armed.</summary>
    public List<(string Operation, string Image)> Steps { get; } = new();

    public void Arm()
    {
        _armed = true;
        Cut("start");
    }

    public void Disarm() => _armed = false;

    private void Cut(string operation)
    {
        if (!Recording)
        {
            return;
        }

        lock (_gate)
        {
            string image = Path.Combine(_images, Steps.Count.ToString("D4", System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(image);
            BeforeImage?.Invoke();
            _power.CopyDurableImage(_root, image);
            Steps.Add((operation, image));
            Hand(operation, image);
            if (LoseDirectoryEntries && _dirOps.Count > 0)
            {
                string lost = Path.Combine(_images, Steps.Count.ToString("D4", System.Globalization.CultureInfo.InvariantCulture));
                Directory.CreateDirectory(lost);
                _power.CopyDurableImage(_root, lost);
                for (int i = _dirOps.Count - 1; i >= 0; i--)
                {
                    Undo(_dirOps[i], lost);
                }

                Steps.Add((operation + $" [lost {_dirOps.Count} unsynced directory ops]", lost));
                Hand(Steps[^1].Operation, lost);
            }
        }
    }

    private void Hand(string operation, string image)
    {
        if (OnImage is { } handler)
        {
            // The handler's own file operations are not steps. (Disarming the whole instance here let
            // other threads' directory operations go unrecorded meanwhile, as if durable at once.)
            t_checking = this;
            try
            {
                handler(operation, image);
            }
            finally
            {
                t_checking = null;
                Directory.Delete(image, recursive: true);
            }
        }
    }

    private string In(string image, string path) => Path.Combine(image, Path.GetRelativePath(_root, path));

    private void Undo(DirOp op, string image)
    {
        switch (op)
        {
            case CreateOp c:
                System.IO.File.Delete(In(image, c.Path));
                break;
            case DeleteOp d:
                Directory.CreateDirectory(Path.GetDirectoryName(In(image, d.Path))!);
                System.IO.File.WriteAllBytes(In(image, d.Path), d.Bytes);
                break;
            case RenameOp r:
                if (System.IO.File.Exists(In(image, r.Destination)))
                {
                    System.IO.File.Move(In(image, r.Destination), In(image, r.Source), overwrite: true);
                }

                if (r.OldDestination is not null)
                {
                    System.IO.File.WriteAllBytes(In(image, r.Destination), r.OldDestination);
                }

                break;
            case MkdirOp m:
                if (Directory.Exists(In(image, m.Path)))
                {
                    Directory.Delete(In(image, m.Path), recursive: true);
                }

                break;
            case RmdirOp rm:
                foreach ((string file, byte[] bytes) in rm.Files)
                {
                    Directory.CreateDirectory(Path.GetDirectoryName(In(image, file))!);
                    System.IO.File.WriteAllBytes(In(image, file), bytes);
                }

                break;
        }
    }

    // Caller holds _gate and has just done the operation: no image can fall between the two.
    private void Record(DirOp op)
    {
        if (Recording && Path.GetFullPath(op.Directory).StartsWith(_root, StringComparison.Ordinal))
        {
            _dirOps.Add(op);
        }
    }

    private string Rel(string path) => Path.GetRelativePath(_root, path);

    // Directory operations run under _gate (after any image in progress) together with their recording.
    // (Lock order: _gate, then the power-loss layer's lock.)
    public override IStorageFile OpenFile(string path, FileOpenMode mode)
    {
        IStorageFile file;
        lock (_gate)
        {
            bool existed = Inner.FileExists(path);
            file = Inner.OpenFile(path, mode);
            if (!existed)
            {
                Record(new CreateOp(path));
            }
        }

        Cut("open " + Rel(path));
        return new File(this, file);
    }

    public override void CreateDirectory(string path)
    {
        lock (_gate)
        {
            bool existed = Inner.DirectoryExists(path);
            base.CreateDirectory(path);
            if (!existed)
            {
                Record(new MkdirOp(Path.GetFullPath(path)));
            }
        }

        Cut("mkdir " + Rel(path));
    }

    public override void DeleteFile(string path)
    {
        lock (_gate)
        {
            byte[]? bytes = Recording ? _power.DurableBytes(path) : null;
            base.DeleteFile(path);
            if (bytes is not null)
            {
                Record(new DeleteOp(path, bytes));
            }
        }

        Cut("delete " + Rel(path));
    }

    public override void DeleteDirectory(string path)
    {
        lock (_gate)
        {
            var files = new Dictionary<string, byte[]>();
            if (Recording && Directory.Exists(path))
            {
                foreach (string f in Directory.GetFiles(path, "*", SearchOption.AllDirectories))
                {
                    if (_power.DurableBytes(f) is { } b)
                    {
                        files[f] = b;
                    }
                }
            }

            base.DeleteDirectory(path);
            Record(new RmdirOp(Path.GetFullPath(path), files));
        }

        Cut("rmdir " + Rel(path));
    }

    public override void MoveFile(string source, string destination)
    {
        lock (_gate)
        {
            byte[]? old = Recording ? _power.DurableBytes(destination) : null;
            base.MoveFile(source, destination);
            Record(new RenameOp(source, destination, old));
        }

        Cut("rename " + Rel(source) + " " + Rel(destination));
    }

    public override void MoveDirectory(string source, string destination)
    {
        base.MoveDirectory(source, destination);
        Cut("rename-dir " + Rel(source));
    }

    public override void SyncDirectory(string path)
    {
        // The fsync makes durable what was done in the directory before it started; an operation that
        // another thread does while it runs may come after it.
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        HashSet<DirOp> covered;
        lock (_gate)
        {
            covered = new HashSet<DirOp>(
                _dirOps.Where(op => Path.GetFullPath(op.Directory).TrimEnd(Path.DirectorySeparatorChar) == full),
                ReferenceEqualityComparer.Instance);
        }

        base.SyncDirectory(path);
        lock (_gate)
        {
            _dirOps.RemoveAll(covered.Contains);
        }

        Cut("syncdir " + Rel(path));
    }

    private sealed class File(CrashPointFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Write(long position, ReadOnlySpan<byte> data)
        {
            base.Write(position, data);
            owner.Cut($"write {owner.Rel(Path)} @{position}+{data.Length}");
        }

        public override void SetLength(long length)
        {
            base.SetLength(length);
            owner.Cut($"setlength {owner.Rel(Path)} {length}");
        }

        public override void Sync()
        {
            base.Sync();
            owner.Cut("fsync " + owner.Rel(Path));
        }
    }
}
