using TxLog.Storage;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Faults;

/// <summary>
/// A layer put between <see cref="CrashPointFileSystem"/> and its power-loss layer (its test
/// constructor): <see cref="AfterDelete"/> runs once a file is gone, before the crash-point layer has
/// recorded the deletion; <see cref="DuringSync"/> runs inside a directory fsync, before it returns.
/// </summary>
internal sealed class InterposedFileSystem(IFileSystem inner) : DelegatingFileSystem(inner)
{
    public Action<string>? AfterDelete { get; set; }

    public Action<string>? DuringSync { get; set; }

    public override void DeleteFile(string path)
    {
        base.DeleteFile(path);
        AfterDelete?.Invoke(path);
    }

    public override void SyncDirectory(string path)
    {
        DuringSync?.Invoke(path);
        base.SyncDirectory(path);
    }

    /// <summary>
    /// Runs <paramref name="action"/> on a new thread and returns once it has finished or is blocked (a
    /// crash-point file system that serializes the step makes it wait for the caller's step); its
    /// exception goes to <paramref name="errors"/>.
    /// </summary>
    public static Thread StartUntilDoneOrBlocked(Action action, List<Exception> errors)
    {
        var thread = new Thread(() =>
        {
            try
            {
                action();
            }
            catch (Exception e)
            {
                lock (errors)
                {
                    errors.Add(e);
                }
            }
        })
        { IsBackground = true };
        thread.Start();
        SpinWait.SpinUntil(() => !thread.IsAlive || (thread.ThreadState & ThreadState.WaitSleepJoin) != 0);
        return thread;
    }
}
