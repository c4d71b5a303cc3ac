using System.Runtime.CompilerServices;
using FASTER.core;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// Microsoft FASTER's <see cref="FasterLog"/>, the fast .NET append-only log (no transactions): 4 MiB pages,
/// 64 MiB of memory, 1 GiB segments, commit metadata under the data directory, no checksums, the default
/// commit policy. On Linux the device is FASTER's managed local-storage device, whose files are opened
/// write-through, so a completed write is durable.
/// </summary>
public sealed class FasterLogEngine : IEngine
{
    /// <inheritdoc />
    public string Name => "fasterlog";

    /// <inheritdoc />
    public async ValueTask<IEngineStore> OpenAsync(string directory, Workload workload)
    {
        // recoverDevice: the W4 reopen must find the segment files written by the load.
        IDevice device = Devices.CreateLogDevice(Path.Combine(directory, "hlog"), recoverDevice: true);
        var settings = new FasterLogSettings
        {
            LogDevice = device,
            PageSizeBits = 22,
            MemorySizeBits = 26,
            SegmentSizeBits = 30,
            LogCommitDir = directory,

            // EnqueueAndWaitForCommitAsync only waits for a commit; nothing else would issue one in W2/W3/W3-log.
            AutoCommit = workload is Workload.Commit or Workload.Outbox or Workload.OutboxLog,
        };
        try
        {
            FasterLog log = await FasterLog.CreateAsync(settings);
            return new FasterLogStore(log, device);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }
}

/// <summary>An open FasterLog and its device.</summary>
internal sealed class FasterLogStore(FasterLog log, IDevice device) : IEngineStore
{
    private LogOutbox? _outbox;

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        // TryEnqueue fails while every in-memory page waits to be flushed; yield to let the flush finish.
        ReadOnlySpan<byte> data = payload.Span;
        while (!log.TryEnqueue(data, out _))
        {
            Thread.Yield();
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync()
    {
        log.Commit(spinWait: true);
        return ValueTask.CompletedTask;
    }

    public ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId) =>
        ValueTask.FromResult<ICommitWriter>(new CommitWriter(log));

    public ValueTask CreateAccountsAsync(int count, long balance)
    {
        _outbox = new LogOutbox(count, balance);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId)
    {
        LogOutbox outbox = _outbox ?? throw new InvalidOperationException("CreateAccountsAsync was not called");
        return ValueTask.FromResult(outbox.CreateWriter(new CommitWriter(log)));
    }

    public ValueTask<IOutboxLogWriter> CreateOutboxLogWriterAsync(int writerId) =>
        ValueTask.FromResult(LogOutbox.CreateLogOnlyWriter(new CommitWriter(log)));

    public ValueTask ScanAsync(ScanTally tally)
    {
        using FasterLogScanIterator iterator = log.Scan(log.BeginAddress, log.TailAddress);
        ScanAll(iterator, tally);
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        log.Dispose();
        device.Dispose();
        return ValueTask.CompletedTask;
    }

    private static unsafe void ScanAll(FasterLogScanIterator iterator, ScanTally tally)
    {
        // Zero-copy: the entry points into FASTER's page frame and stays valid until UnsafeRelease.
        while (iterator.UnsafeGetNext(out byte* entry, out int length, out _, out _))
        {
            try
            {
                tally.Add(new ReadOnlySpan<byte>(entry, length));
            }
            finally
            {
                iterator.UnsafeRelease();
            }
        }
    }

    /// <summary>A W2 writer: enqueue, then wait for the (auto-)commit that covers the entry.</summary>
    private sealed class CommitWriter(FasterLog log) : ICommitWriter
    {
        // Pooled builder: this method really awaits on every call, and the default builder would allocate
        // its state machine box per commit.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload) =>
            await log.EnqueueAndWaitForCommitAsync(payload);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
