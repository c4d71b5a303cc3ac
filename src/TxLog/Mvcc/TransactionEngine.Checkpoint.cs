using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using TxLog.Diagnostics;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Mvcc;

public sealed partial class TransactionEngine
{
    // Checkpoint file "checkpoint-{ts:D20}-{redoOffset:D20}.ckpt", written atomically:
    //   Checkpoint => Magic "TXCK", Version int16 (= 1), CheckpointTs int64, RedoOffset int64, MapCount int32,
    //                 Map* (NameLength int16, Name (ASCII), EntryCount int64,
    //                       Entry* (KeyLength int32, Key, ValueLength int32, Value)),
    //                 Crc uint32 (CRC-32C of every byte before it)
    // It holds every map as of CheckpointTs; RedoOffset is where the redo of later commits starts.
    private static ReadOnlySpan<byte> CheckpointMagic => "TXCK"u8;
    private const short CheckpointVersion = 1;
    private const int KeptCheckpoints = 2;

    /// <summary>
    /// Writes a checkpoint of every map as of the current visible timestamp (a consistent cut taken
    /// without stopping writers), then deletes redo segments that no kept checkpoint needs and old
    /// checkpoint files, and collects versions no open snapshot can see. Returns the checkpoint timestamp.
    /// </summary>
    /// <remarks>Traced as a <c>txlog.checkpoint</c> span, timed on the store's meter and logged (event 3001).</remarks>
    public async Task<long> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        await _checkpointGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        StoreTelemetry telemetry = _store.Telemetry;
        long started = Stopwatch.GetTimestamp();
        using Activity? span = telemetry.StartActivity("txlog.checkpoint");
        long ts;
        long redoOffset;
        try
        {
            lock (_commitLock)
            {
                ts = Volatile.Read(ref _visibleTs);
                redoOffset = _redo.LogEndOffset;
                while (_redoOffsets.TryPeek(out (long CommitTs, long Offset) entry) && entry.CommitTs <= ts)
                {
                    _redoOffsets.Dequeue();
                }

                if (_redoOffsets.TryPeek(out (long CommitTs, long Offset) first))
                {
                    redoOffset = Math.Min(redoOffset, first.Offset);
                }

                Interlocked.Exchange(ref _redoBytesSinceCheckpoint, 0);
                lock (_snapshotsLock)
                {
                    _snapshots[ts] = _snapshots.GetValueOrDefault(ts) + 1;
                }
            }

            try
            {
                _redo.Roll(); // so the redo before this point sits in whole segments that can go
                (int mapCount, long entryCount, long bytes) = WriteCheckpoint(ts, redoOffset);
                TrimAfterCheckpoint();
                CollectGarbage();
                double ms = StoreTelemetry.ElapsedMs(started);
                StoreTelemetry.Record(telemetry.CheckpointDuration, ms, default);
                LogMessages.CheckpointWritten(telemetry.Logger, ts, redoOffset, entryCount, bytes, ms);
                span?.SetTag("txlog.checkpoint.timestamp", ts);
                span?.SetTag("txlog.checkpoint.redo_offset", redoOffset);
                span?.SetTag("txlog.checkpoint.maps", mapCount);
                span?.SetTag("txlog.checkpoint.entries", entryCount);
                span?.SetTag("txlog.checkpoint.bytes", bytes);
                span?.SetStatus(ActivityStatusCode.Ok);
            }
            catch (Exception e)
            {
                span?.SetStatus(ActivityStatusCode.Error, e.Message);
                throw;
            }
            finally
            {
                lock (_snapshotsLock)
                {
                    int count = _snapshots[ts] - 1;
                    if (count == 0)
                    {
                        _snapshots.Remove(ts);
                    }
                    else
                    {
                        _snapshots[ts] = count;
                    }
                }
            }
        }
        finally
        {
            _checkpointGate.Release();
        }

        return ts;
    }

    private void BackgroundCheckpoint()
    {
        if (Volatile.Read(ref _disposed) != 0 || _checkpointGate.CurrentCount == 0)
        {
            return;
        }

        _ = Diagnostics.NoFlow.Run(async () =>
        {
            try
            {
                await CheckpointAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is TxLogException or IOException or ObjectDisposedException)
            {
                // Retried at the next trigger; redo keeps everything meanwhile. (Closing is not a failure.)
                if (e is not ObjectDisposedException)
                {
                    LogMessages.CheckpointFailed(_store.Telemetry.Logger, e);
                }
            }
        });
    }

    // Returns what it wrote: maps, entries and the file's size.
    private (int Maps, long Entries, long Bytes) WriteCheckpoint(long ts, long redoOffset)
    {
        IFileSystem fs = _store.FileSystem;
        string name = string.Create(CultureInfo.InvariantCulture, $"checkpoint-{ts:D20}-{redoOffset:D20}.ckpt");
        string path = Path.Combine(_checkpointDirectory, name);
        string temp = path + ".tmp";
        List<MapCore> maps;
        lock (_mapsLock)
        {
            maps = new List<MapCore>(_maps.Values);
        }

        maps.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        long totalEntries = 0;
        long bytes;
        using (var writer = new ChunkWriter(fs.OpenFile(temp, FileOpenMode.OpenOrCreate)))
        {
            writer.Bytes(CheckpointMagic);
            writer.Int16(CheckpointVersion);
            writer.Int64(ts);
            writer.Int64(redoOffset);
            writer.Int32(maps.Count);
            foreach (MapCore map in maps)
            {
                var entries = new List<(byte[] Key, byte[] Value)>();
                foreach (Row row in map.Range(null, null))
                {
                    byte[]? value;
                    lock (row)
                    {
                        value = row.VisibleAt(ts)?.Value;
                    }

                    if (value is not null)
                    {
                        entries.Add((row.Key, value));
                    }
                }

                writer.Int16((short)map.Name.Length);
                writer.Bytes(Encoding.ASCII.GetBytes(map.Name));
                writer.Int64(entries.Count);
                totalEntries += entries.Count;
                foreach ((byte[] key, byte[] value) in entries)
                {
                    writer.Int32(key.Length);
                    writer.Bytes(key);
                    writer.Int32(value.Length);
                    writer.Bytes(value);
                }
            }

            writer.Finish();
            bytes = writer.Length;
        }

        fs.MoveFile(temp, path);
        fs.SyncDirectory(_checkpointDirectory);
        return (maps.Count, totalEntries, bytes);
    }

    // Keeps the newest checkpoints and the redo the oldest of them needs.
    private void TrimAfterCheckpoint()
    {
        List<(long Ts, long RedoOffset, string Path)> all = ListCheckpoints();
        if (all.Count == 0)
        {
            return;
        }

        for (int i = 0; i < all.Count - KeptCheckpoints; i++)
        {
            _store.FileSystem.DeleteFile(all[i].Path);
        }

        long keepFrom = all[Math.Max(0, all.Count - KeptCheckpoints)].RedoOffset;
        _redo.Log.DeleteSegmentsBefore(keepFrom);
    }

    private List<(long Ts, long RedoOffset, string Path)> ListCheckpoints()
    {
        var list = new List<(long, long, string)>();
        foreach (string file in _store.FileSystem.GetFiles(_checkpointDirectory, "checkpoint-*.ckpt"))
        {
            string[] parts = Path.GetFileNameWithoutExtension(file).Split('-');
            if (parts.Length == 3
                && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long ts)
                && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long offset))
            {
                list.Add((ts, offset, file));
            }
        }

        list.Sort(static (a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    /// <summary>Prunes versions no snapshot can see and removes rows that are only an old delete.</summary>
    internal int CollectGarbage()
    {
        long oldest = OldestSnapshot();
        int removed = 0;
        List<MapCore> maps;
        lock (_mapsLock)
        {
            maps = new List<MapCore>(_maps.Values);
        }

        foreach (MapCore map in maps)
        {
            foreach (Row row in map.Range(null, null))
            {
                bool deadDelete;
                lock (row)
                {
                    row.PruneUnsynchronized(oldest);
                    deadDelete = row.Owner is null && row.Head is { Value: null } head && head.CommitTs <= oldest && head.Older is null;
                }

                if (deadDelete && map.TryRemove(row, oldest))
                {
                    removed++;
                }
            }
        }

        return removed;
    }

    // ---------------------------------------------------------------- recovery

    private void Recover()
    {
        long checkpointTs = 0;
        long redoStart = 0; // without a checkpoint all redo is needed: only a checkpoint lets it be trimmed
        string used = "no checkpoint";
        string skipped = "";
        List<(long Ts, long RedoOffset, string Path)> checkpoints = ListCheckpoints();
        for (int i = checkpoints.Count - 1; i >= 0; i--)
        {
            try
            {
                LoadCheckpoint(checkpoints[i].Path, checkpoints[i].Ts, checkpoints[i].RedoOffset);
                checkpointTs = checkpoints[i].Ts;
                redoStart = checkpoints[i].RedoOffset;
                used = $"checkpoint at ts {checkpointTs}";
                break;
            }
            catch (CorruptIndexException e)
            {
                skipped += $"; skipped corrupt {Path.GetFileName(checkpoints[i].Path)} ({e.Message})";
                lock (_mapsLock)
                {
                    _maps.Clear();
                }
            }
        }

        if (redoStart < _redo.LogStartOffset)
        {
            throw new CorruptIndexException($"The MVCC redo log starts at offset {_redo.LogStartOffset} but recovery needs it from {redoStart}: redo that no valid checkpoint covers is missing", _checkpointDirectory);
        }

        long last = checkpointTs;
        long highestSeen = checkpointTs; // dropped transactions' timestamps too: a new commit must not reuse one
        int replayed = 0;
        if (_redo.LogEndOffset > redoStart)
        {
            // Read committed: redo written inside a unified transaction counts only if that transaction
            // committed (the coordinator's recovery has decided every transaction before this runs).
            var pending = new List<(string Map, byte[] Key, byte[]? Value)>();
            long currentTs = -1;
            long currentFirstOffset = -1;
            bool currentFinal = false;
            void Apply()
            {
                if (currentTs > checkpointTs && currentFinal)
                {
                    foreach ((string map, byte[] key, byte[]? value) in pending)
                    {
                        Row row = GetMap(map).GetOrAdd(key);
                        row.Head = new RowVersion(currentTs, value, null);
                    }

                    _redoOffsets.Enqueue((currentTs, currentFirstOffset));
                    last = Math.Max(last, currentTs);
                    replayed++;
                }

                pending.Clear();
            }

            using LogReader reader = _redo.OpenReader(redoStart, Consuming.IsolationLevel.ReadCommitted);
            while (reader.TryRead(out Record record))
            {
                if (record.Key.SequenceEqual(TxnHeaderKey))
                {
                    long ts = BinaryPrimitives.ReadInt64BigEndian(record.Value);
                    bool final = (record.Value[12] & FinalBatchFlag) != 0;
                    highestSeen = Math.Max(highestSeen, ts);
                    if (ts != currentTs)
                    {
                        Apply(); // the previous transaction (dropped unless its last batch arrived)
                        currentTs = ts;
                        currentFirstOffset = record.Offset;
                    }

                    currentFinal = final;
                    continue;
                }

                int nameLength = BinaryPrimitives.ReadInt16BigEndian(record.Key);
                string map = Encoding.ASCII.GetString(record.Key.Slice(2, nameLength));
                pending.Add((map, record.Key.Slice(2 + nameLength).ToArray(), record.HasValue ? record.Value.ToArray() : null));
            }

            Apply();
        }

        // Timestamps of dropped transactions (cut before their last batch) are used up: otherwise the
        // next commit would reuse one, and the next recovery would complete the dropped transaction's
        // batches with that commit's final batch (it groups redo by timestamp).
        last = Math.Max(last, highestSeen);
        _lastCommitTs = last;
        _visibleTs = last;
        _committedView = new System.Runtime.CompilerServices.StrongBox<Snapshot>(new Snapshot(last, []));
        RecoverySummary = $"{used}; replayed {replayed} committed transactions from redo offset {redoStart}; visible ts {last}{skipped}";
    }

    private void LoadCheckpoint(string path, long expectedTs, long expectedRedoOffset)
    {
        byte[] bytes = IndexFiles.ReadWhole(_store.FileSystem, path);
        if (bytes.Length < 4 + 2 + 8 + 8 + 4 + 4 || !bytes.AsSpan(0, 4).SequenceEqual(CheckpointMagic))
        {
            throw new CorruptIndexException("Checkpoint has no valid header", path);
        }

        uint stored = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(bytes.Length - 4));
        if (stored != Crc32C.Compute(bytes.AsSpan(0, bytes.Length - 4)))
        {
            throw new CorruptIndexException("Checkpoint checksum mismatch", path);
        }

        try
        {
            int p = 4;
            short version = BinaryPrimitives.ReadInt16BigEndian(bytes.AsSpan(p));
            p += 2;
            long ts = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(p));
            long redoOffset = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(p + 8));
            p += 16;
            if (version != CheckpointVersion || ts != expectedTs || redoOffset != expectedRedoOffset)
            {
                throw new CorruptIndexException($"Checkpoint version {version} or its timestamps do not match its name", path);
            }

            int mapCount = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(p));
            p += 4;
            for (int m = 0; m < mapCount; m++)
            {
                int nameLength = BinaryPrimitives.ReadInt16BigEndian(bytes.AsSpan(p));
                string name = Encoding.ASCII.GetString(bytes, p + 2, nameLength);
                p += 2 + nameLength;
                long count = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(p));
                p += 8;
                MapCore map = GetMap(name);
                for (long e = 0; e < count; e++)
                {
                    int keyLength = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(p));
                    byte[] key = bytes.AsSpan(p + 4, keyLength).ToArray();
                    p += 4 + keyLength;
                    int valueLength = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(p));
                    byte[] value = bytes.AsSpan(p + 4, valueLength).ToArray();
                    p += 4 + valueLength;
                    map.GetOrAdd(key).Head = new RowVersion(ts, value, null);
                }
            }

            if (p != bytes.Length - 4)
            {
                throw new CorruptIndexException("Checkpoint has trailing bytes", path);
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new CorruptIndexException("Checkpoint is truncated", path);
        }
    }

    /// <summary>Buffers sequential writes to a file in 1 MiB pieces, keeping a running CRC-32C; <see cref="Finish"/> appends the CRC and fsyncs.</summary>
    private sealed class ChunkWriter(IStorageFile file) : IDisposable
    {
        private readonly byte[] _buffer = new byte[1 << 20];
        private int _used;
        private long _position;
        private uint _crc = 0xFFFF_FFFF;

        /// <summary>Bytes written so far (buffered ones included).</summary>
        public long Length => _position + _used;

        public void Int16(short value)
        {
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteInt16BigEndian(b, value);
            Bytes(b);
        }

        public void Int32(int value)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32BigEndian(b, value);
            Bytes(b);
        }

        public void Int64(long value)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(b, value);
            Bytes(b);
        }

        public void Bytes(ReadOnlySpan<byte> data)
        {
            _crc = Crc32C.Append(_crc, data);
            while (data.Length > 0)
            {
                int n = Math.Min(data.Length, _buffer.Length - _used);
                data.Slice(0, n).CopyTo(_buffer.AsSpan(_used));
                _used += n;
                data = data.Slice(n);
                if (_used == _buffer.Length)
                {
                    Flush();
                }
            }
        }

        private void Flush()
        {
            file.Write(_position, _buffer.AsSpan(0, _used));
            _position += _used;
            _used = 0;
        }

        public void Finish()
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(b, ~_crc);
            if (_used + 4 > _buffer.Length)
            {
                Flush();
            }

            b.CopyTo(_buffer.AsSpan(_used));
            _used += 4;
            Flush();
            file.SetLength(_position);
            file.Sync();
        }

        public void Dispose() => file.Dispose();
    }
}
