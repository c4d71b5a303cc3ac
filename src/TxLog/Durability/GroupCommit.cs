using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Microsoft.Extensions.ObjectPool;
using TxLog.Diagnostics;
using TxLog.Storage;

namespace TxLog.Durability;

/// <summary>
/// Leader/follower group commit for one partition. A caller that needs offset <c>o</c> durable
/// returns at once if the high watermark is past it; otherwise, if nobody is flushing, it becomes
/// the leader and runs the fsync on its own thread (no hand-off latency at low concurrency); if a
/// flush is running, it parks as a follower. When a flush ends, every follower it covered completes,
/// and one of the rest is woken as the next leader, so its fsync covers all who arrived meanwhile.
/// Every waiter completes: with success once its offset is durable, or with the flush's exception.
/// Waiters are pooled <see cref="IValueTaskSource{T}"/>s: no allocation per wait.
/// Thread-safety: all members are thread-safe.
/// </summary>
internal sealed class GroupCommit : IDisposable
{
    private static readonly ObjectPool<Waiter> WaiterPool =
        new DefaultObjectPool<Waiter>(new DefaultPooledObjectPolicy<Waiter>(), 1024);

    private readonly PartitionLog _log;
    private readonly object _gate = new();
    private readonly List<Waiter> _waiters = new(64);  // followers, guarded by _gate
    private readonly List<Waiter> _completed = new(64); // scratch for the leader, guarded by _gate
    private bool _flushing;                             // a leader is running, guarded by _gate
    private long _batches;                              // fsyncs run (for tests and metrics)
    private SemaphoreSlim? _flusherSignal;              // wakes the dedicated flusher thread (created on first offload)
    private volatile bool _disposed;
    private int _lastGroupSize;                         // committers covered by the last fsync (see Gather)

    /// <summary>Most yields a leader spends waiting for its group to gather (see <see cref="Gather"/>).</summary>
    internal const int GatherYields = 4;

    public GroupCommit(PartitionLog log)
    {
        _log = log;
    }

    /// <summary>Committers covered by the last fsync (tests).</summary>
    internal int LastGroupSize => Volatile.Read(ref _lastGroupSize);

    /// <summary>Number of fsyncs this gate has run.</summary>
    public long FlushCount => Interlocked.Read(ref _batches);


    /// <summary>Completes when every offset up to and including <paramref name="offset"/> is durable.</summary>
    /// <param name="offset">The offset that must become durable.</param>
    /// <param name="offload">
    /// When this caller would lead the fsync, run it on the partition's dedicated flusher thread instead
    /// of the calling thread: a transaction that needs several partitions durable at once gets their
    /// fsyncs in parallel without tying up pool threads.
    /// </param>
    public ValueTask WaitAsync(long offset, bool offload = false)
    {
        if (_log.DurableOffset > offset)
        {
            return default;
        }

        return WaitSlowAsync(offset, offload);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WaitSlowAsync(long offset, bool offload)
    {
        while (true)
        {
            Waiter? waiter = null;
            lock (_gate)
            {
                if (_log.DurableOffset > offset)
                {
                    return;
                }

                if (_flushing)
                {
                    waiter = WaiterPool.Get();
                    waiter.Prepare(offset);
                    _waiters.Add(waiter);
                }
                else if (offload && !_disposed)
                {
                    // The flusher thread leads; this caller waits like a follower.
                    _flushing = true;
                    waiter = WaiterPool.Get();
                    waiter.Prepare(offset);
                    _waiters.Add(waiter);
                    SignalFlusherUnsynchronized();
                }
                else
                {
                    _flushing = true;
                }
            }

            if (waiter is not null)
            {
                ValueTask<bool> wait = new(waiter, waiter.Version);
                bool durable;
                try
                {
                    durable = await wait.ConfigureAwait(false);
                }
                finally
                {
                    WaiterPool.Return(waiter);
                }

                if (durable)
                {
                    return;
                }

                // Woken as the next leader: fall through and flush.
                lock (_gate)
                {
                    if (_log.DurableOffset > offset)
                    {
                        HandOffUnsynchronized(out Waiter? next);
                        next?.Wake(false, null);
                        return;
                    }
                }
            }

            LeadFlush(callerWaits: true);
            if (_log.DurableOffset > offset)
            {
                return;
            }
        }
    }

    private void SignalFlusherUnsynchronized()
    {
        if (_flusherSignal is null)
        {
            _flusherSignal = new SemaphoreSlim(0);
            var thread = new Thread(FlusherLoop) { IsBackground = true, Name = "txlog-flusher" };
            thread.Start();
        }

        _flusherSignal.Release();
    }

    private void FlusherLoop()
    {
        SemaphoreSlim signal = _flusherSignal!;
        while (true)
        {
            signal.Wait();
            if (_disposed)
            {
                // Whoever is still queued must not wait for a flusher that is gone: hand over.
                Waiter? next;
                lock (_gate)
                {
                    HandOffUnsynchronized(out next);
                }

                next?.Wake(false, null);
                return;
            }

            try
            {
                LeadFlush(callerWaits: false);
            }
            catch (Exception)
            {
                // Every waiter of this flush got the exception; the thread must live on (an unhandled
                // exception here would end the process).
            }
        }
    }

    /// <summary>Stops the flusher thread (if one was started); queued waiters are handed to a caller-side leader.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _flusherSignal?.Release();
        }
    }

    // Runs one fsync as the leader, completes the followers it covered and hands leadership on.
    // callerWaits: the leader is itself a committer (counted in the group-commit batch size).
    private void LeadFlush(bool callerWaits)
    {
        Exception? failure = null;
        long durable = 0;
        long fsyncsBefore = _log.FsyncCount;
        Gather(callerWaits);
        try
        {
            durable = _log.Sync(preallocate: true);
            Interlocked.Increment(ref _batches);
        }
        catch (Exception e)
        {
            failure = e;
        }

        Waiter? next;
        lock (_gate)
        {
            _completed.Clear();
            for (int i = _waiters.Count - 1; i >= 0; i--)
            {
                Waiter w = _waiters[i];
                if (failure is not null || w.Offset < durable)
                {
                    _completed.Add(w);
                    _waiters.RemoveAt(i);
                }
            }

            HandOffUnsynchronized(out next);
            foreach (Waiter w in _completed)
            {
                w.Wake(true, failure);
            }

            if (failure is null && _log.FsyncCount != fsyncsBefore)
            {
                // Only when this flush ran an fsync (the HW may already have covered everybody).
                int group = _completed.Count + (callerWaits ? 1 : 0);
                Volatile.Write(ref _lastGroupSize, group);
                StoreTelemetry.Record(_log.Config.Telemetry.GroupCommitBatch, group, default);
            }

            _completed.Clear();
        }

        next?.Wake(false, null);
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    // Before its fsync, a leader with fewer committers waiting than the last fsync covered yields the CPU a
    // few times: committers that are runnable (appending, about to wait) then join this fsync instead of
    // starting the next one. Each fsync costs CPU on a small machine, so larger groups mean more commits
    // per second (side-by-side runs on 2 cores: W2 at 4 and 16 writers +35-70%, W3 at 16 writers about
    // +10%; docs/benchmarks.md, session 8). Bounded, and skipped when the group is already as large as
    // the last one: one writer, or every writer already waiting, fsyncs at once, so a group that shrank
    // costs at most GatherYields yields once. The follower count is read without the lock: a heuristic.
    private void Gather(bool callerWaits)
    {
        int expected = Volatile.Read(ref _lastGroupSize);
        int self = callerWaits ? 1 : 0;
        for (int i = 0; i < GatherYields && _waiters.Count + self < expected; i++)
        {
            Thread.Yield();
        }
    }

    // Picks the next leader among remaining followers, or ends the flushing state.
    private void HandOffUnsynchronized(out Waiter? next)
    {
        if (_waiters.Count == 0)
        {
            _flushing = false;
            next = null;
            return;
        }

        next = _waiters[0];
        _waiters.RemoveAt(0);
    }

    /// <summary>A parked follower. Result true: durable; false: you are the next leader.</summary>
    private sealed class Waiter : IValueTaskSource<bool>
    {
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

        public long Offset { get; private set; }

        public short Version => _core.Version;

        public void Prepare(long offset)
        {
            _core.Reset();
            Offset = offset;
        }

        public void Wake(bool durable, Exception? failure)
        {
            if (failure is null)
            {
                _core.SetResult(durable);
            }
            else
            {
                _core.SetException(failure);
            }
        }

        public bool GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
