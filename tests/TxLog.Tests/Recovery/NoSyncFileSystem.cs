using TxLog.Storage;

namespace TxLog.Tests.Recovery;

/// <summary>
/// The real file system without fsyncs (of files and directories). For the tests that reopen a
/// store hundreds of times to check what recovery does with the bytes of a damaged file: durability
/// is not their subject (the fault and kill -9 tests cover it), and fsyncs would make them slow.
/// </summary>
internal sealed class NoSyncFileSystem : IFileSystem
{
    public static readonly NoSyncFileSystem Instance = new();

    private readonly IFileSystem _inner = OsFileSystem.Instance;

    public IStorageFile OpenFile(string path, FileOpenMode mode) => new File(_inner.OpenFile(path, mode));

    public bool FileExists(string path) => _inner.FileExists(path);

    public bool DirectoryExists(string path) => _inner.DirectoryExists(path);

    public void CreateDirectory(string path) => _inner.CreateDirectory(path);

    public void DeleteFile(string path) => _inner.DeleteFile(path);

    public void DeleteDirectory(string path) => _inner.DeleteDirectory(path);

    public void MoveFile(string source, string destination) => _inner.MoveFile(source, destination);

    public void MoveDirectory(string source, string destination) => _inner.MoveDirectory(source, destination);

    public string[] GetFiles(string directory, string searchPattern) => _inner.GetFiles(directory, searchPattern);

    public string[] GetDirectories(string directory) => _inner.GetDirectories(directory);

    public void SyncDirectory(string path)
    {
    }

    public IDisposable? TryLock(string path) => _inner.TryLock(path);

    private sealed class File(IStorageFile inner) : IStorageFile
    {
        public string Path => inner.Path;

        public long Length => inner.Length;

        public void Write(long position, ReadOnlySpan<byte> data) => inner.Write(position, data);

        public int Read(long position, Span<byte> buffer) => inner.Read(position, buffer);

        public void Sync()
        {
        }

        public void SetLength(long length) => inner.SetLength(length);

        public void Dispose() => inner.Dispose();
    }
}
