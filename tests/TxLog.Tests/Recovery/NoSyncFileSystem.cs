using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Recovery;

/// <summary>
/// The real file system without fsyncs (of files and directories). For the tests that reopen a
/// store hundreds of times to check what recovery does with the bytes of a damaged file: durability
/// is not their subject (the fault and kill -9 tests cover it), and fsyncs would make them slow.
/// </summary>
internal sealed class NoSyncFileSystem : DelegatingFileSystem
{
    public static readonly NoSyncFileSystem Instance = new();

    protected override IStorageFile WrapFile(string path, IStorageFile file) => new File(file);

    public override void SyncDirectory(string path)
    {
    }

    private sealed class File(IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Sync()
        {
        }
    }
}
