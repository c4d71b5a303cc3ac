using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// The physical-limit references: one file of <c>[i32 length][payload]</c> records, written with
/// <see cref="RandomAccess"/> and made durable with fsync/fdatasync. <c>raw</c> grows the file with every
/// durable batch; <c>raw-prealloc</c> first fills it with real zeros for W2/W3/W3-log so that each fdatasync only
/// flushes data blocks (the durable-commit limit of the disk). W1 and W4 are the same for both.
/// </summary>
public sealed class RawEngine(bool preallocate) : IEngine, IKvEngine
{
    /// <summary>The JSON workload name of raw-prealloc's <c>kv-put</c>.</summary>
    public const string KvPutVariant = "kv_put";

    /// <inheritdoc />
    public string Name => preallocate ? "raw-prealloc" : "raw";

    /// <summary><c>kv-put</c> runs on <c>raw-prealloc</c> only (the physical limit it is compared with).</summary>
    public IReadOnlyList<string> KvPutVariants => preallocate ? [KvPutVariant] : [];

    /// <inheritdoc />
    public ValueTask<IKvStore> OpenKvAsync(string directory, string variant)
    {
        if (!NativeIo.IsSupported)
        {
            throw new NotSupportedException("the raw engines call fdatasync(2) and run on Linux only");
        }

        if (!preallocate || variant != KvPutVariant)
        {
            throw new ArgumentException($"unknown kv-put variant '{variant}' for {Name}", nameof(variant));
        }

        return ValueTask.FromResult<IKvStore>(new RawKvStore(new RawStore(Path.Combine(directory, "raw.log"), preallocated: true)));
    }

    /// <inheritdoc />
    public ValueTask<IEngineStore> OpenAsync(string directory, Workload workload)
    {
        if (!NativeIo.IsSupported)
        {
            throw new NotSupportedException("the raw engines call fdatasync(2) and run on Linux only");
        }

        bool preallocated = preallocate && workload is Workload.Commit or Workload.Outbox or Workload.OutboxLog;
        return ValueTask.FromResult<IEngineStore>(new RawStore(Path.Combine(directory, "raw.log"), preallocated));
    }
}

/// <summary>An open raw log file: a buffered single-writer path (W1/W4) and a group-commit path (W2/W3/W3-log).</summary>
internal sealed class RawStore : IEngineStore
{
    private const int BufferSize = 1 << 20;
    private const long PreallocationStep = 128L << 20;

    private readonly SafeFileHandle _handle;
    private readonly bool _preallocated;

    // W1 / W4 load: records are staged in one user-space buffer and written out when it is full.
    private readonly byte[] _appendBuffer = new byte[BufferSize];
    private int _appendBuffered;

    // Where the next write lands; owned by the appending thread (W1) or the current leader (W2/W3/W3-log).
    private long _fileOffset;

    // Bytes of the file known to be allocated with real zeros (raw-prealloc only).
    private long _allocated;

    // W2 / W3 group commit. All fields below are guarded by _gate.
    private readonly object _gate = new();
    private byte[] _pending = new byte[64 * 1024];
    private byte[] _spare = new byte[64 * 1024];
    private int _pendingLength;
    private long _pendingBatch = 1;
    private long _durableBatch;
    private bool _flushing;

    private LogOutbox? _outbox;

    public RawStore(string path, bool preallocated)
    {
        _preallocated = preallocated;
        _handle = File.OpenHandle(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        _fileOffset = RandomAccess.GetLength(_handle);
        if (preallocated)
        {
            // Untimed: the window should only see data-block flushes, never size or extent changes.
            ExtendWithZeros();
        }
    }

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        ReadOnlySpan<byte> data = payload.Span;
        int needed = sizeof(int) + data.Length;
        if (_appendBuffered + needed > _appendBuffer.Length)
        {
            WriteAppendBuffer();
            if (needed > _appendBuffer.Length)
            {
                throw new NotSupportedException($"record of {data.Length} bytes exceeds the raw engine's buffer");
            }
        }

        Span<byte> target = _appendBuffer.AsSpan(_appendBuffered);
        BinaryPrimitives.WriteInt32LittleEndian(target, data.Length);
        data.CopyTo(target[sizeof(int)..]);
        _appendBuffered += needed;
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync()
    {
        WriteAppendBuffer();
        NativeIo.FullSync(_handle);
        return ValueTask.CompletedTask;
    }

    public ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId) =>
        ValueTask.FromResult<ICommitWriter>(new CommitWriter(this));

    public ValueTask CreateAccountsAsync(int count, long balance)
    {
        _outbox = new LogOutbox(count, balance);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId)
    {
        LogOutbox outbox = _outbox ?? throw new InvalidOperationException("CreateAccountsAsync was not called");
        return ValueTask.FromResult(outbox.CreateWriter(new CommitWriter(this)));
    }

    public ValueTask<IOutboxLogWriter> CreateOutboxLogWriterAsync(int writerId) =>
        ValueTask.FromResult(LogOutbox.CreateLogOnlyWriter(new CommitWriter(this)));

    public ValueTask ScanAsync(ScanTally tally)
    {
        // Read 1 MiB chunks and parse records in place; a record cut by the chunk end is moved to the
        // buffer's start and completed by the next read, so each payload is handed over contiguously.
        byte[] buffer = new byte[BufferSize];
        long length = RandomAccess.GetLength(_handle);
        long position = 0;
        int carried = 0;
        while (position < length)
        {
            int read = RandomAccess.Read(_handle, buffer.AsSpan(carried), position);
            if (read == 0)
            {
                break;
            }

            position += read;
            int available = carried + read;
            int at = 0;
            while (available - at >= sizeof(int))
            {
                int recordLength = BinaryPrimitives.ReadInt32LittleEndian(buffer.AsSpan(at));
                if (recordLength < 0 || recordLength > buffer.Length - sizeof(int))
                {
                    throw new InvalidDataException($"corrupt raw record length {recordLength}");
                }

                if (available - at - sizeof(int) < recordLength)
                {
                    break;
                }

                tally.Add(buffer.AsSpan(at + sizeof(int), recordLength));
                at += sizeof(int) + recordLength;
            }

            carried = available - at;
            buffer.AsSpan(at, carried).CopyTo(buffer);
        }

        if (carried != 0)
        {
            throw new InvalidDataException($"raw log ends inside a record ({carried} bytes left)");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    private void WriteAppendBuffer()
    {
        if (_appendBuffered == 0)
        {
            return;
        }

        RandomAccess.Write(_handle, _appendBuffer.AsSpan(0, _appendBuffered), _fileOffset);
        _fileOffset += _appendBuffered;
        _appendBuffered = 0;
    }

    /// <summary>
    /// Leader/follower group commit: the record joins the pending batch; if no flush is running this writer
    /// becomes the leader, writes the whole batch and fdatasyncs it, then wakes everyone whose record it held.
    /// Followers block: this is a synchronous engine, each writer owns a thread.
    /// </summary>
    internal void CommitDurably(ReadOnlySpan<byte> payload)
    {
        long myBatch;
        byte[] batch;
        int batchLength;
        lock (_gate)
        {
            int needed = sizeof(int) + payload.Length;
            if (_pendingLength + needed > _pending.Length)
            {
                Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _pendingLength + needed));
            }

            BinaryPrimitives.WriteInt32LittleEndian(_pending.AsSpan(_pendingLength), payload.Length);
            payload.CopyTo(_pending.AsSpan(_pendingLength + sizeof(int)));
            _pendingLength += needed;
            myBatch = _pendingBatch;

            while (true)
            {
                if (_durableBatch >= myBatch)
                {
                    return;
                }

                if (!_flushing)
                {
                    // Nobody is flushing, so the pending batch is still ours: take it and lead.
                    _flushing = true;
                    batch = _pending;
                    batchLength = _pendingLength;
                    (_pending, _spare) = (_spare, _pending);
                    _pendingLength = 0;
                    _pendingBatch++;
                    break;
                }

                Monitor.Wait(_gate);
            }
        }

        try
        {
            if (_preallocated && _fileOffset + batchLength > _allocated)
            {
                ExtendWithZeros();
            }

            RandomAccess.Write(_handle, batch.AsSpan(0, batchLength), _fileOffset);
            _fileOffset += batchLength;
            NativeIo.DataSync(_handle);
        }
        finally
        {
            lock (_gate)
            {
                // On failure the followers of this batch would wait forever; marking it done keeps the run
                // from hanging, and the leader's exception still fails the run.
                _durableBatch = myBatch;
                _flushing = false;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>
    /// raw-prealloc after a buffered load (untimed): extends the zero-filled area until at least one
    /// preallocation step lies ahead of the write position, so the timed commits flush data blocks only.
    /// </summary>
    internal void EnsurePreallocatedAhead()
    {
        while (_preallocated && _allocated - _fileOffset < PreallocationStep)
        {
            ExtendWithZeros();
        }
    }

    private void ExtendWithZeros()
    {
        byte[] zeros = new byte[BufferSize];
        long end = _allocated + PreallocationStep;
        for (long at = _allocated; at < end; at += zeros.Length)
        {
            RandomAccess.Write(_handle, zeros, at);
        }

        NativeIo.FullSync(_handle);
        _allocated = end;
    }

    /// <summary>A W2 writer: a thin handle on the shared group commit.</summary>
    private sealed class CommitWriter(RawStore store) : ICommitWriter
    {
        public ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload)
        {
            store.CommitDurably(payload.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

/// <summary>
/// raw-prealloc under <c>kv-put</c>: what a log-only user would do for a point write. The load appends every
/// key + value as one 116-byte record through the buffered path (one fsync at the end), then the zeroed area
/// ahead is topped up; each operation appends one 116-byte record (16-byte key, 100-byte value) and waits for
/// it to be durable through the W2 leader/follower group commit. No index, no isolation: the state would be
/// rebuilt by replaying the log.
/// </summary>
internal sealed class RawKvStore(RawStore store) : IKvStore
{
    public async ValueTask LoadAsync(long count)
    {
        byte[] record = new byte[KvData.KeySize + KvData.ValueSize];
        ReadOnlyMemory<byte> memory = record;
        for (long i = 0; i < count; i++)
        {
            KvData.FillKey(record, i);
            KvData.FillLoadValue(record.AsSpan(KvData.KeySize), i);
            await store.AppendAsync(memory);
        }

        await store.FlushAsync();
        store.EnsurePreallocatedAhead();
    }

    public ValueTask<IKvWriter> CreateWriterAsync(int writerId) => ValueTask.FromResult<IKvWriter>(new Writer(store));

    public ValueTask DisposeAsync() => store.DisposeAsync();

    private sealed class Writer(RawStore store) : IKvWriter
    {
        private readonly byte[] _record = new byte[KvData.KeySize + KvData.ValueSize];

        public ValueTask PutAsync(byte[] key, byte[] value)
        {
            key.CopyTo(_record, 0);
            value.CopyTo(_record, KvData.KeySize);
            store.CommitDurably(_record);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
