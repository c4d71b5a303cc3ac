using System.Text;
using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>
/// Wraps the real file system; while <see cref="BlockSyncs"/> is set, fsyncs of .log files wait
/// until <see cref="Release"/>. Lets tests see what happens before and after an fsync, without sleeps.
/// </summary>
internal sealed class GatedSyncFileSystem : DelegatingFileSystem
{
    private readonly SemaphoreSlim _entered = new(0);
    private ManualResetEventSlim _gate = new(true);
    private int _logSyncs;

    public int LogSyncs => Volatile.Read(ref _logSyncs);

    public void BlockSyncs() => _gate = new ManualResetEventSlim(false);

    public void Release() => _gate.Set();

    /// <summary>Waits until an fsync of a .log file has started and is blocked.</summary>
    public bool WaitForBlockedSync(TimeSpan timeout) => _entered.Wait(timeout);

    protected override IStorageFile WrapFile(string path, IStorageFile file) => new File(this, file);

    private sealed class File(GatedSyncFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Sync()
        {
            if (Path.EndsWith(".log", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref owner._logSyncs);
                if (!owner._gate.IsSet)
                {
                    owner._entered.Release();
                    owner._gate.Wait(TimeSpan.FromSeconds(30));
                }
            }

            Inner.Sync();
        }
    }
}

internal static class TestRecords
{
    /// <summary>Copies a live store directory (lock file excepted): the files as a kill -9 at this moment would leave them.</summary>
    public static void CopyImage(string from, string to)
    {
        foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string relative = System.IO.Path.GetRelativePath(from, file);
            if (relative == LogStore.LockFileName)
            {
                continue;
            }

            string target = System.IO.Path.Combine(to, relative);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
            File.Copy(file, target, overwrite: true);
        }
    }

    public static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    public static string Text(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    /// <summary>Reads every record from <paramref name="from"/> as "offset:key:value" strings.</summary>
    public static List<string> ReadAll(LogPartition partition, long from)
    {
        var list = new List<string>();
        using LogReader reader = partition.OpenReader(from);
        while (reader.TryRead(out TxLog.Records.Record record))
        {
            string key = record.HasKey ? Text(record.Key) : "null";
            string value = record.HasValue ? Text(record.Value) : "null";
            list.Add($"{record.Offset}:{key}:{value}");
        }

        return list;
    }
}
