using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>
/// Base of the test file systems: forwards every call to an inner file system (the real one by
/// default). Subclasses override what they change; <see cref="WrapFile"/> lets them wrap opened files,
/// usually in a <see cref="DelegatingFile"/> subclass.
/// </summary>
internal abstract class DelegatingFileSystem(IFileSystem? inner = null) : IFileSystem
{
    protected IFileSystem Inner { get; } = inner ?? OsFileSystem.Instance;

    public virtual IStorageFile OpenFile(string path, FileOpenMode mode) => WrapFile(path, Inner.OpenFile(path, mode));

    /// <summary>Wraps a file just opened; the default returns it as is.</summary>
    protected virtual IStorageFile WrapFile(string path, IStorageFile file) => file;

    public virtual bool FileExists(string path) => Inner.FileExists(path);

    public virtual bool DirectoryExists(string path) => Inner.DirectoryExists(path);

    public virtual void CreateDirectory(string path) => Inner.CreateDirectory(path);

    public virtual void DeleteFile(string path) => Inner.DeleteFile(path);

    public virtual void DeleteDirectory(string path) => Inner.DeleteDirectory(path);

    public virtual void MoveFile(string source, string destination) => Inner.MoveFile(source, destination);

    public virtual void MoveDirectory(string source, string destination) => Inner.MoveDirectory(source, destination);

    public virtual string[] GetFiles(string directory, string searchPattern) => Inner.GetFiles(directory, searchPattern);

    public virtual string[] GetDirectories(string directory) => Inner.GetDirectories(directory);

    public virtual void SyncDirectory(string path) => Inner.SyncDirectory(path);

    public virtual IDisposable? TryLock(string path) => Inner.TryLock(path);
}

/// <summary>A file that forwards every call to an inner file; subclasses override what they change.</summary>
internal class DelegatingFile(IStorageFile inner) : IStorageFile
{
    protected IStorageFile Inner { get; } = inner;

    public string Path => Inner.Path;

    public long Length => Inner.Length;

    public virtual void Write(long position, ReadOnlySpan<byte> data) => Inner.Write(position, data);

    public virtual int Read(long position, Span<byte> buffer) => Inner.Read(position, buffer);

    public virtual void Sync() => Inner.Sync();

    public virtual void SetLength(long length) => Inner.SetLength(length);

    public virtual void Dispose() => Inner.Dispose();
}
