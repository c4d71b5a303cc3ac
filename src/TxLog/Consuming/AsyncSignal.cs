namespace TxLog.Consuming;

/// <summary>
/// Wakes waiters when a partition's positions move (HW, LSO), so consumers wait for new data without
/// polling. A waiter reads the generation, checks its condition, then awaits the generation's task;
/// <see cref="Pulse"/> completes it and starts a new generation. A task is allocated only when
/// someone waits. Thread-safe.
/// </summary>
internal sealed class AsyncSignal
{
    private TaskCompletionSource? _current;

    /// <summary>The task the next <see cref="Pulse"/> completes.</summary>
    public Task WaitTask
    {
        get
        {
            TaskCompletionSource? tcs = Volatile.Read(ref _current);
            if (tcs is null)
            {
                var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                tcs = Interlocked.CompareExchange(ref _current, created, null) ?? created;
            }

            return tcs.Task;
        }
    }

    /// <summary>Completes the current generation's task, if anyone asked for it.</summary>
    /// <remarks>
    /// Call after the state change it announces. The full fence keeps the look at the waiter slot after
    /// that change (a store then a load: a plain or volatile write, or a lock release, may be passed by
    /// the read). A waiter takes its task with a compare-and-swap (also a full fence) before it checks the
    /// state, so either the waiter sees the change or the pulse sees the waiter: no wake-up is lost.
    /// </remarks>
    public void Pulse()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _current) is null)
        {
            return;
        }

        Interlocked.Exchange(ref _current, null)?.TrySetResult();
    }
}
