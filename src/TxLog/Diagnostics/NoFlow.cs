namespace TxLog.Diagnostics;

/// <summary>
/// Starts the store's background work (timers, loops) without capturing the caller's execution
/// context: a timer created during a commit or at open must not run every later tick inside that
/// caller's span (<see cref="System.Diagnostics.Activity.Current"/>) or other async-local state.
/// </summary>
internal static class NoFlow
{
    /// <summary><see cref="TimeProvider.CreateTimer"/> with the execution context not captured.</summary>
    public static ITimer CreateTimer(TimeProvider time, TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        WithoutFlow(() => time.CreateTimer(callback, state, dueTime, period));

    /// <summary><see cref="Task.Run(Func{Task})"/> with the execution context not captured.</summary>
    public static Task Run(Func<Task> work) => WithoutFlow(() => Task.Run(work));

    // Runs `start` with flow suppressed (SuppressFlow throws when it already is).
    private static T WithoutFlow<T>(Func<T> start)
    {
        if (ExecutionContext.IsFlowSuppressed())
        {
            return start();
        }

        using (ExecutionContext.SuppressFlow())
        {
            return start();
        }
    }
}
