using System.Buffers.Binary;
using System.Text;
using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Producers;
using TxLog.Records;
using TxLog.Storage;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Inspection;

/// <summary>How serious a finding of <see cref="StoreVerifier"/> is.</summary>
internal enum FindingSeverity
{
    /// <summary>Expected state that the next open tidies up (preallocated zeros of an active segment).</summary>
    Info,

    /// <summary>Something the store repairs or ignores at the next open (a torn tail after a crash, a stale file).</summary>
    Warning,

    /// <summary>Damage: data, an index or a checksummed file is wrong.</summary>
    Error,
}

/// <summary>One finding: severity, file (relative to the data directory), byte position in it when known, message.</summary>
internal sealed record VerifyFinding(FindingSeverity Severity, string File, long? Position, string Message);

/// <summary>What <see cref="StoreVerifier.Run"/> checked and found.</summary>
internal sealed class VerifyReport
{
    public List<VerifyFinding> Findings { get; } = new();

    public int Topics { get; set; }

    public int Partitions { get; set; }

    public int Segments { get; set; }

    public long Batches { get; set; }

    public long Records { get; set; }

    public long LogBytes { get; set; }

    public int IndexFiles { get; set; }

    public int Snapshots { get; set; }

    public int Checkpoints { get; set; }

    public int Errors => Findings.Count(f => f.Severity == FindingSeverity.Error);

    public int Warnings => Findings.Count(f => f.Severity == FindingSeverity.Warning);
}

/// <summary>
/// Checks a data directory without changing anything: every batch (CRC-32C, magic, lengths, record
/// encoding, partition leader epoch, dense offsets within and across segments, segment names), the
/// offset and time indexes against the batches they point at, the aborted-transaction indexes against
/// the ABORT markers in the log, producer snapshots (size, version, CRC-32C), <c>topics.meta</c>
/// (magic, version, CRC-32C), MVCC checkpoints (magic, version, CRC-32C, structure) and the records
/// of the coordinator and consumer-offsets logs. Things the next open repairs by design (a torn tail
/// or preallocated zeros at the end of the last segment after an unclean close, a missing index) are
/// warnings or notes, not errors. Files are opened read-only. Not thread-safe.
/// </summary>
internal sealed class StoreVerifier
{
    private const int MaxFindingsPerFile = 20;

    private readonly DataDirectory _directory;
    private readonly int _maxBatchBytes;
    private readonly bool _storeOpen;
    private readonly bool _clean;
    private readonly Dictionary<string, int> _perFile = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Errors, int Warnings)> _unlisted = new(StringComparer.Ordinal);
    private readonly VerifyReport _report = new();
    private Action<long>? _progress;
    private long _bytesDone;
    private long _bytesReported;

    public StoreVerifier(string path, int maxBatchBytes, bool storeOpen)
    {
        _directory = new DataDirectory(path);
        _maxBatchBytes = maxBatchBytes;
        _storeOpen = storeOpen;
        _clean = !storeOpen && _directory.CleanShutdown;
    }

    /// <summary>True when the last close was clean (and the store is not open now).</summary>
    public bool CleanShutdown => _clean;

    /// <summary>Bytes of all segment files (what the progress callback counts up to).</summary>
    public long TotalLogBytes()
    {
        long total = 0;
        foreach ((string dir, _, _) in PartitionDirectoriesOnDisk())
        {
            foreach (SegmentFile segment in DataDirectory.ListSegments(dir))
            {
                total += segment.FileLength;
            }
        }

        return total;
    }

    /// <summary>Runs every check; <paramref name="progress"/> receives the segment bytes processed so far.</summary>
    public VerifyReport Run(Action<long>? progress = null)
    {
        _progress = progress;
        List<TopicDescription>? topics = VerifyMetadata();
        var expected = new Dictionary<string, (string Topic, int Partition)>(StringComparer.Ordinal);
        if (topics is not null)
        {
            _report.Topics = topics.Count;
            foreach (TopicDescription topic in topics)
            {
                for (int p = 0; p < topic.Partitions; p++)
                {
                    expected[_directory.PartitionDirectory(topic.Name, p)] = (topic.Name, p);
                }
            }
        }

        var onDisk = PartitionDirectoriesOnDisk().ToDictionary(d => d.Directory, d => (d.Topic, d.Partition), StringComparer.Ordinal);
        var toCheck = new SortedDictionary<string, (string Topic, int Partition)>(StringComparer.Ordinal);
        foreach ((string dir, (string Topic, int Partition) tp) in expected)
        {
            if (onDisk.ContainsKey(dir))
            {
                toCheck[dir] = tp;
            }
            else if (File.Exists(dir))
            {
                Add(FindingSeverity.Error, dir, null, "is a file where the partition directory belongs (the store cannot create the directory and refuses to open)");
            }
            else
            {
                Add(FindingSeverity.Warning, dir, null, "partition directory is missing (the store creates it empty at the next open; any data it had is gone)");
            }
        }

        foreach ((string dir, (string Topic, int Partition) tp) in onDisk)
        {
            if (expected.ContainsKey(dir))
            {
                continue;
            }

            if (topics is null)
            {
                toCheck[dir] = tp; // no usable topic list: check what is there
            }
            else
            {
                Add(FindingSeverity.Warning, dir, null, $"topic '{tp.Topic}' is not in {StoreMetadata.FileName}; the store deletes this directory at the next open");
            }
        }

        long redoLogStart = 0;
        foreach ((string dir, (string topic, int partition)) in toCheck)
        {
            try
            {
                long start = VerifyPartition(dir, topic, partition);
                if (topic == Mvcc.TransactionEngine.RedoTopic && partition == 0)
                {
                    redoLogStart = start;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Add(_storeOpen ? FindingSeverity.Warning : FindingSeverity.Error, dir, null, "cannot be read: " + e.Message + (_storeOpen ? " (the store is open and may have changed it)" : ""));
            }
        }

        VerifyCheckpoints(redoLogStart);
        AddUnlistedSummaries();
        _report.Findings.Sort(static (a, b) =>
        {
            int c = string.CompareOrdinal(a.File, b.File);
            return c != 0 ? c : (a.Position ?? -1).CompareTo(b.Position ?? -1);
        });
        return _report;
    }

    private IEnumerable<(string Directory, string Topic, int Partition)> PartitionDirectoriesOnDisk()
    {
        if (!Directory.Exists(_directory.Path))
        {
            yield break;
        }

        foreach (string dir in Directory.GetDirectories(_directory.Path))
        {
            if (DataDirectory.IsPartitionDirectoryName(Path.GetFileName(dir), out string topic, out int partition))
            {
                yield return (dir, topic, partition);
            }
        }
    }

    private List<TopicDescription>? VerifyMetadata()
    {
        string path = _directory.MetadataPath;
        if (File.Exists(path + ".tmp"))
        {
            Add(FindingSeverity.Warning, path + ".tmp", null, "leftover of an interrupted topic-list update (ignored by the store)");
        }

        if (!File.Exists(path))
        {
            Add(FindingSeverity.Error, path, null, "the topic list is missing");
            return null;
        }

        try
        {
            return _directory.ReadTopics();
        }
        catch (CorruptIndexException e)
        {
            Add(FindingSeverity.Error, path, null, StripFile(e.Message, e.FilePath) + " (the store refuses to open)");
            return null;
        }
        catch (IOException e)
        {
            Add(FindingSeverity.Error, path, null, "cannot be read: " + e.Message);
            return null;
        }
    }

    // ---------------------------------------------------------------- partitions

    // Returns the partition's log start offset.
    private long VerifyPartition(string dir, string topic, int partition)
    {
        _report.Partitions++;
        List<SegmentFile> segments = DataDirectory.ListSegments(dir);
        var segmentOffsets = new HashSet<long>(segments.Select(s => s.BaseOffset));
        foreach (string file in Directory.GetFiles(dir))
        {
            string extension = Path.GetExtension(file);
            bool named = DataDirectory.TryParseOffsetName(file, out long offset);
            switch (extension)
            {
                case ".log" when !named:
                    Add(FindingSeverity.Warning, file, null, "not named like a segment (20-digit base offset); the store ignores it");
                    break;
                case ".index" or ".timeindex" or ".txnindex" when !named || !segmentOffsets.Contains(offset):
                    Add(FindingSeverity.Warning, file, null, "index file of a segment that does not exist");
                    break;
                case ".tmp":
                    Add(FindingSeverity.Warning, file, null, "leftover of an interrupted atomic write (ignored by the store)");
                    break;
            }
        }

        var transactions = new TransactionTracker { LogStartOffset = segments.Count == 0 ? 0 : segments[0].BaseOffset };
        RecordChecker? records = topic switch
        {
            TransactionCoordinator.TopicName => CheckTransactionStateRecords,
            GroupCoordinator.TopicName => CheckConsumerOffsetRecords,
            _ => null,
        };

        long? previousEnd = null;
        long logEnd = segments.Count == 0 ? 0 : segments[^1].BaseOffset;
        for (int i = 0; i < segments.Count; i++)
        {
            SegmentFile segment = segments[i];
            bool last = i == segments.Count - 1;
            if (previousEnd is { } end && end != segment.BaseOffset)
            {
                Add(FindingSeverity.Error, segment.LogPath, 0, end < segment.BaseOffset
                    ? $"segment starts at offset {segment.BaseOffset} but the previous segment ends at {end}: offsets {end}..{segment.BaseOffset - 1} are missing"
                    : $"segment starts at offset {segment.BaseOffset} but the previous segment already reaches {end}");
            }

            int findingsBefore = _report.Findings.Count;
            try
            {
                previousEnd = VerifySegment(segment, last, transactions, records);
                if (_storeOpen && !File.Exists(segment.LogPath))
                {
                    // Retention (or an internal log's restatement) deleted the segment while it was
                    // being read: what was found about its files is moot.
                    _report.Findings.RemoveRange(findingsBefore, _report.Findings.Count - findingsBefore);
                    Add(FindingSeverity.Warning, segment.LogPath, null, "the store deleted this segment while it was being checked");
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Add(_storeOpen ? FindingSeverity.Warning : FindingSeverity.Error, segment.LogPath, null,
                    "cannot be read: " + e.Message + (_storeOpen ? " (the store is open and may have deleted or replaced it)" : ""));
                previousEnd = null;
            }

            logEnd = previousEnd ?? logEnd;
        }

        VerifyTransactionIndexChecksums(dir, segments);
        VerifySnapshots(dir, logEnd);
        return segments.Count == 0 ? 0 : segments[0].BaseOffset;
    }

    private delegate void RecordChecker(RecordBatch batch, string file, long position);

    // Scans one segment; returns the offset after its last valid batch.
    private long VerifySegment(SegmentFile segment, bool last, TransactionTracker transactions, RecordChecker? records)
    {
        _report.Segments++;
        bool lenient = last && !_clean; // the active segment after an unclean close (or while open): recovery's job
        FindingSeverity indexSeverity = lenient ? FindingSeverity.Warning : FindingSeverity.Error;
        string file = segment.LogPath;
        List<(int Relative, int Position)>? offsetIndex = ReadOffsetIndex(segment, indexSeverity, out bool offsetIndexOrdered);
        List<(long Timestamp, int Relative)>? timeIndex = ReadTimeIndex(segment, indexSeverity, out bool timeIndexOrdered);
        int oi = 0;
        int ti = 0;
        long next = segment.BaseOffset;
        long maxTimestamp = -1;
        long validEnd = 0;
        bool afterInvalidRegion = false;
        (long Position, string Message)? pendingBadCrc = null; // lenient segment: a torn write unless a valid batch follows
        using (var scanner = new SegmentScanner(file, _maxBatchBytes))
        {
            _report.LogBytes += scanner.Length;
            scanner.ExpectedNextOffset = segment.BaseOffset;
            bool stop = false;
            while (!stop)
            {
                ScanItem item = scanner.Next();
                switch (item.Kind)
                {
                    case ScanItemKind.End:
                        stop = true;
                        break;
                    case ScanItemKind.ZeroTail:
                        if (lenient)
                        {
                            Add(FindingSeverity.Info, file, item.Position, $"{item.Length} bytes of preallocated zeros after the data (the store cuts them at the next open)");
                        }
                        else
                        {
                            Add(FindingSeverity.Error, file, item.Position, $"{item.Length} bytes of zeros after the last batch; a {(last ? "cleanly closed" : "rolled")} segment must end with a whole batch");
                        }

                        stop = true;
                        break;
                    case ScanItemKind.TornTail:
                        if (lenient)
                        {
                            Add(FindingSeverity.Warning, file, item.Position, $"torn write: the last {item.Length} bytes are not a whole batch ({item.Check}); recovery truncates them at the next open");
                        }
                        else
                        {
                            Add(FindingSeverity.Error, file, item.Position, $"the last {item.Length} bytes are not a whole batch ({item.Check}); a {(last ? "cleanly closed" : "rolled")} segment must end with a whole batch");
                        }

                        stop = true;
                        break;
                    case ScanItemKind.InvalidRegion:
                        Add(FindingSeverity.Error, file, item.Position, $"{item.Length} bytes of invalid data ({item.Check}) inside the segment; a valid batch follows at position {item.Position + item.Length}");

                        // Index entries naming the lost bytes are not judged on their own.
                        while (offsetIndex is not null && oi < offsetIndex.Count && offsetIndex[oi].Position < item.Position + item.Length)
                        {
                            oi++;
                        }

                        afterInvalidRegion = true;
                        break;
                    case ScanItemKind.Batch:
                        var batch = new RecordBatch(item.Bytes.Span);
                        _report.Batches++;
                        bool valid = item.Check == BatchCheck.Valid;
                        if (!valid)
                        {
                            uint computed = Crc32C.Compute(item.Bytes.Span.Slice(L.AttributesOffset));
                            string crcMessage = $"CRC mismatch in the batch at base offset {batch.BaseOffset} ({item.Length} bytes): stored 0x{batch.Crc:x8}, computed 0x{computed:x8}";
                            if (lenient)
                            {
                                // Recovery's rule: a bad batch is a torn write unless a valid batch follows.
                                pendingBadCrc ??= (item.Position, crcMessage);
                            }
                            else
                            {
                                Add(FindingSeverity.Error, file, item.Position, crcMessage);
                            }
                            if (batch.BaseOffset == next && batch.LastOffsetDelta >= 0)
                            {
                                // Keep following the offsets after a damaged batch whose header looks right;
                                // index entries naming it are not judged (its bytes are not trusted).
                                next = batch.NextOffset;
                                maxTimestamp = Math.Max(maxTimestamp, batch.MaxTimestamp);
                                while (timeIndex is not null && ti < timeIndex.Count && segment.BaseOffset + timeIndex[ti].Relative <= batch.LastOffset)
                                {
                                    ti++;
                                }
                            }
                            else
                            {
                                timeIndexOrdered = false; // offsets unknown from here: the time index cannot be matched
                            }
                        }
                        else
                        {
                            if (pendingBadCrc is { } bad)
                            {
                                Add(FindingSeverity.Error, file, bad.Position, bad.Message + $"; a valid batch follows at position {item.Position}, so this is damage inside the data");
                                pendingBadCrc = null;
                            }

                            CheckBatch(batch, file, item.Position, next, records);
                            transactions.Observe(batch);
                            maxTimestamp = Math.Max(maxTimestamp, batch.MaxTimestamp);
                            next = batch.NextOffset;
                            validEnd = item.Position + item.Length;
                            _report.Records += Math.Max(batch.RecordCount, 0);
                        }

                        if (offsetIndex is not null && offsetIndexOrdered)
                        {
                            while (oi < offsetIndex.Count && offsetIndex[oi].Position < item.Position)
                            {
                                (int rel, int pos) = offsetIndex[oi];
                                Add(indexSeverity, segment.IndexPath, (long)oi * OffsetIndex.EntrySize, $"entry {oi} (offset {segment.BaseOffset + rel}, position {pos}) does not point at the start of a batch");
                                oi++;
                            }

                            if (oi < offsetIndex.Count && offsetIndex[oi].Position == item.Position)
                            {
                                long indexed = segment.BaseOffset + offsetIndex[oi].Relative;
                                if (valid && indexed != batch.LastOffset)
                                {
                                    Add(indexSeverity, segment.IndexPath, (long)oi * OffsetIndex.EntrySize,
                                        $"entry {oi} names offset {indexed} at position {item.Position}, but the batch there holds offsets {batch.BaseOffset}..{batch.LastOffset} (an entry names the batch's last offset)");
                                }

                                oi++;
                            }
                        }

                        if (valid && afterInvalidRegion)
                        {
                            while (timeIndex is not null && ti < timeIndex.Count && segment.BaseOffset + timeIndex[ti].Relative < batch.BaseOffset)
                            {
                                ti++;
                            }

                            afterInvalidRegion = false;
                        }

                        if (valid && timeIndex is not null && timeIndexOrdered)
                        {
                            while (ti < timeIndex.Count && segment.BaseOffset + timeIndex[ti].Relative <= batch.LastOffset)
                            {
                                (long ts, int rel) = timeIndex[ti];
                                long offset = segment.BaseOffset + rel;
                                if (offset != batch.LastOffset)
                                {
                                    Add(indexSeverity, segment.TimeIndexPath, (long)ti * TimeIndex.EntrySize, $"entry {ti} ({ts}, offset {offset}) does not name the last offset of a batch (the batch holds {batch.BaseOffset}..{batch.LastOffset})");
                                }
                                else if (ts != maxTimestamp)
                                {
                                    Add(indexSeverity, segment.TimeIndexPath, (long)ti * TimeIndex.EntrySize, $"entry {ti} (offset {offset}) has timestamp {ts}, but the largest timestamp up to that offset is {maxTimestamp}");
                                }

                                ti++;
                            }
                        }

                        break;
                }

                Progress(item);
            }
        }

        if (pendingBadCrc is { } torn)
        {
            Add(FindingSeverity.Warning, file, torn.Position, "torn write: " + torn.Message + "; nothing valid follows, so recovery truncates it at the next open");
        }

        if (offsetIndex is not null && offsetIndexOrdered)
        {
            for (; oi < offsetIndex.Count; oi++)
            {
                (int rel, int pos) = offsetIndex[oi];
                Add(indexSeverity, segment.IndexPath, (long)oi * OffsetIndex.EntrySize, $"entry {oi} (offset {segment.BaseOffset + rel}, position {pos}) points beyond the valid data ({validEnd} bytes)");
            }
        }

        if (timeIndex is not null && timeIndexOrdered)
        {
            for (; ti < timeIndex.Count; ti++)
            {
                (long ts, int rel) = timeIndex[ti];
                Add(indexSeverity, segment.TimeIndexPath, (long)ti * TimeIndex.EntrySize, $"entry {ti} ({ts}, offset {segment.BaseOffset + rel}) names an offset beyond the segment's last offset {next - 1}");
            }
        }

        if (validEnd > 0 && !lenient && (offsetIndex is null || timeIndex is null))
        {
            Add(FindingSeverity.Warning, offsetIndex is null ? segment.IndexPath : segment.TimeIndexPath, null, "index file is missing (the store rebuilds it from the log at the next open)");
        }

        VerifyTransactionIndex(segment, next, transactions, indexSeverity);
        return next;
    }

    private void CheckBatch(RecordBatch batch, string file, long position, long expectedOffset, RecordChecker? records)
    {
        if (batch.BaseOffset != expectedOffset)
        {
            Add(FindingSeverity.Error, file, position, batch.BaseOffset > expectedOffset
                ? $"batch base offset {batch.BaseOffset} where {expectedOffset} was expected: offsets {expectedOffset}..{batch.BaseOffset - 1} are missing"
                : $"batch base offset {batch.BaseOffset} where {expectedOffset} was expected: offsets go backwards");
        }

        if (batch.PartitionLeaderEpoch != L.NoPartitionLeaderEpoch)
        {
            Add(FindingSeverity.Error, file, position, $"partition leader epoch {batch.PartitionLeaderEpoch} (TxLog writes -1; recovery rejects the batch)");
        }

        try
        {
            batch.ValidateRecords();
        }
        catch (CorruptRecordException e)
        {
            Add(FindingSeverity.Error, file, position, "records do not decode: " + e.Message);
            return;
        }

        if (batch.IsControl)
        {
            if (!batch.IsTransactional || batch.RecordCount != 1 || batch.ProducerId < 0)
            {
                Add(FindingSeverity.Error, file, position, $"control batch at offset {batch.BaseOffset} is malformed (transactional: {batch.IsTransactional}, records: {batch.RecordCount}, producer id: {batch.ProducerId})");
            }

            foreach (Record record in batch)
            {
                try
                {
                    ControlRecord.ReadType(record.Key);
                    ControlRecord.ReadCoordinatorEpoch(record.Value);
                }
                catch (CorruptRecordException e)
                {
                    Add(FindingSeverity.Error, file, position, $"control record at offset {record.Offset}: {e.Message}");
                }
            }

            return;
        }

        records?.Invoke(batch, file, position);
    }

    private void CheckTransactionStateRecords(RecordBatch batch, string file, long position)
    {
        foreach (Record record in batch)
        {
            if (!record.HasKey || record.Key.Length == 0 || !record.HasValue)
            {
                Add(FindingSeverity.Error, file, position, $"{TransactionCoordinator.TopicName} record at offset {record.Offset} has no key or value (the store refuses to open)");
                continue;
            }

            try
            {
                if (record.Key[0] == TransactionLogRecords.MetadataType)
                {
                    string id = Encoding.UTF8.GetString(record.Key.Slice(1));
                    TransactionLogRecords.ReadMetadata(id, record.Value);
                }
                else if (record.Key[0] == TransactionLogRecords.ProducerIdBlockType)
                {
                    TransactionLogRecords.ReadProducerIdBlock(record.Value);
                }
                else
                {
                    Add(FindingSeverity.Warning, file, position, $"{TransactionCoordinator.TopicName} record at offset {record.Offset} has unknown type {record.Key[0]} (ignored by the store)");
                }
            }
            catch (Exception e) when (e is CorruptRecordException or ArgumentException or IndexOutOfRangeException)
            {
                Add(FindingSeverity.Error, file, position, $"{TransactionCoordinator.TopicName} record at offset {record.Offset} does not decode: {e.Message}");
            }
        }
    }

    private void CheckConsumerOffsetRecords(RecordBatch batch, string file, long position)
    {
        foreach (Record record in batch)
        {
            if (!record.HasKey)
            {
                continue; // replay skips it too
            }

            try
            {
                GroupCoordinator.DecodeKey(record.Key); // a tombstone's key too: replay decodes it
                if (record.HasValue)
                {
                    GroupCoordinator.DecodeValue(record.Value);
                }
            }
            catch (Exception e) when (e is CorruptRecordException or ArgumentException)
            {
                Add(FindingSeverity.Error, file, position, $"{GroupCoordinator.TopicName} record at offset {record.Offset} does not decode: {e.Message}");
            }
        }
    }

    private List<(int Relative, int Position)>? ReadOffsetIndex(SegmentFile segment, FindingSeverity severity, out bool ordered)
    {
        ordered = true;
        if (!File.Exists(segment.IndexPath))
        {
            return null;
        }

        _report.IndexFiles++;
        byte[] bytes = IndexFiles.ReadWhole(OsFileSystem.Instance, segment.IndexPath);
        if (bytes.Length % OffsetIndex.EntrySize != 0)
        {
            Add(severity, segment.IndexPath, bytes.Length - (bytes.Length % OffsetIndex.EntrySize), $"size {bytes.Length} is not a multiple of {OffsetIndex.EntrySize} (the store rebuilds the index)");
        }

        var entries = new List<(int, int)>(bytes.Length / OffsetIndex.EntrySize);
        for (int i = 0; i + OffsetIndex.EntrySize <= bytes.Length; i += OffsetIndex.EntrySize)
        {
            int relative = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i));
            int position = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i + 4));
            if (relative < 0 || position < 0
                || (entries.Count > 0 && (relative <= entries[^1].Item1 || position <= entries[^1].Item2)))
            {
                Add(severity, segment.IndexPath, i, $"entry {entries.Count} (relative offset {relative}, position {position}) is negative or not above the previous entry");
                ordered = false;
            }

            entries.Add((relative, position));
        }

        return entries;
    }

    private List<(long Timestamp, int Relative)>? ReadTimeIndex(SegmentFile segment, FindingSeverity severity, out bool ordered)
    {
        ordered = true;
        if (!File.Exists(segment.TimeIndexPath))
        {
            return null;
        }

        _report.IndexFiles++;
        byte[] bytes = IndexFiles.ReadWhole(OsFileSystem.Instance, segment.TimeIndexPath);
        if (bytes.Length % TimeIndex.EntrySize != 0)
        {
            Add(severity, segment.TimeIndexPath, bytes.Length - (bytes.Length % TimeIndex.EntrySize), $"size {bytes.Length} is not a multiple of {TimeIndex.EntrySize} (the store rebuilds the index)");
        }

        var entries = new List<(long, int)>(bytes.Length / TimeIndex.EntrySize);
        for (int i = 0; i + TimeIndex.EntrySize <= bytes.Length; i += TimeIndex.EntrySize)
        {
            long timestamp = BinaryPrimitives.ReadInt64BigEndian(bytes.AsSpan(i));
            int relative = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(i + 8));
            if (relative < 0 || (entries.Count > 0 && (timestamp <= entries[^1].Item1 || relative < entries[^1].Item2)))
            {
                Add(severity, segment.TimeIndexPath, i, $"entry {entries.Count} ({timestamp}, relative offset {relative}): timestamps must increase and offsets must not decrease");
                ordered = false;
            }

            entries.Add((timestamp, relative));
        }

        return entries;
    }

    private void VerifyTransactionIndex(SegmentFile segment, long segmentEnd, TransactionTracker transactions, FindingSeverity severity)
    {
        var expected = transactions.Aborted.Where(a => a.Marker >= segment.BaseOffset && a.Marker < segmentEnd).ToList();
        var matched = new HashSet<long>();
        string path = segment.TransactionIndexPath;
        if (File.Exists(path))
        {
            _report.IndexFiles++;
            byte[] bytes = IndexFiles.ReadWhole(OsFileSystem.Instance, path);
            if (bytes.Length % TransactionIndex.EntrySize != 0)
            {
                Add(severity, path, bytes.Length - (bytes.Length % TransactionIndex.EntrySize), $"size {bytes.Length} is not a multiple of {TransactionIndex.EntrySize}");
            }

            long previous = -1;
            for (int i = 0; i + TransactionIndex.EntrySize <= bytes.Length; i += TransactionIndex.EntrySize)
            {
                int n = i / TransactionIndex.EntrySize;
                AbortedTransaction entry = TransactionIndex.Decode(bytes.AsSpan(i, TransactionIndex.EntrySize), out short version);
                (long pid, long first, long lastOffset) = (entry.ProducerId, entry.FirstOffset, entry.LastOffset);
                if (!TransactionIndex.IsWellFormed(version, entry))
                {
                    Add(severity, path, i, $"entry {n} is malformed (version {version}, offsets {first}..{lastOffset}, last stable offset {entry.LastStableOffset})");
                    continue;
                }

                if (lastOffset <= previous)
                {
                    Add(severity, path, i, $"entry {n} (marker at offset {lastOffset}) is not in marker order (previous marker at {previous})");
                }

                previous = lastOffset;
                if (lastOffset < segment.BaseOffset || lastOffset >= segmentEnd)
                {
                    Add(severity, path, i, $"entry {n} names a marker at offset {lastOffset}, outside this segment's offsets {segment.BaseOffset}..{segmentEnd - 1}");
                    continue;
                }

                (long Producer, long? First, long Marker)? match = null;
                foreach (var a in expected)
                {
                    if (a.Marker == lastOffset)
                    {
                        match = a;
                    }
                }

                if (match is not { } m)
                {
                    Add(severity, path, i, $"entry {n} (producer {pid}, offsets {first}..{lastOffset}): there is no ABORT marker at offset {lastOffset}");
                    continue;
                }

                matched.Add(lastOffset);
                if (m.Producer != pid)
                {
                    Add(severity, path, i, $"entry {n} names producer {pid}, but the ABORT marker at offset {lastOffset} is producer {m.Producer}'s");
                }
                else if (m.First is { } realFirst && realFirst != first && !(first < transactions.LogStartOffset && realFirst >= transactions.LogStartOffset))
                {
                    // (An entry whose transaction started below the log start is fine: retention removed
                    // its first records, and the log shows the transaction only from later on.)
                    Add(severity, path, i, $"entry {n} says producer {pid}'s aborted transaction starts at offset {first}; the log says {realFirst}");
                }
            }
        }

        foreach ((long producer, long? first, long marker) in expected)
        {
            if (!matched.Contains(marker))
            {
                Add(severity, File.Exists(path) ? path : segment.LogPath, null,
                    $"the ABORT marker at offset {marker} (producer {producer}, transaction from {(first is { } f ? f.ToString(System.Globalization.CultureInfo.InvariantCulture) : "before the log start")}) has no .txnindex entry: read-committed readers would return the aborted records");
            }
        }
    }

    // txnindex.checksums: its own magic, version and CRC, and every segment's .txnindex against its
    // recorded checksum. The active segment's index is not checked while the store is open or after an
    // unclean close (its file changes after the checksum was taken; recovery rebuilds it from the log).
    private void VerifyTransactionIndexChecksums(string dir, List<SegmentFile> segments)
    {
        string path = TransactionIndexChecksums.PathFor(dir);
        if (!File.Exists(path))
        {
            if (!_storeOpen && (_clean ? segments.Count > 0 : segments.Count > 1))
            {
                Add(FindingSeverity.Warning, path, null, "is missing (a store written by an older version, or the file was lost): the next open checks every .txnindex of the partition against the log, reading all its segments once");
            }

            return;
        }

        _report.IndexFiles++;
        Dictionary<long, TransactionIndexChecksum> recorded;
        try
        {
            recorded = TransactionIndexChecksums.Decode(IndexFiles.ReadWhole(OsFileSystem.Instance, path), path);
        }
        catch (CorruptIndexException e)
        {
            Add(FindingSeverity.Error, path, null, StripFile(e.Message, e.FilePath) + " (the next open checks every .txnindex of the partition against the log and rewrites this file)");
            return;
        }

        for (int i = 0; i < segments.Count; i++)
        {
            SegmentFile segment = segments[i];
            if (i == segments.Count - 1 && !_clean)
            {
                continue;
            }

            string index = segment.TransactionIndexPath;
            byte[] bytes = File.Exists(index) ? IndexFiles.ReadWhole(OsFileSystem.Instance, index) : [];
            if (!recorded.TryGetValue(segment.BaseOffset, out TransactionIndexChecksum checksum))
            {
                Add(FindingSeverity.Warning, path, null, $"has no checksum for the .txnindex of segment {segment.BaseOffset} (a crash while the segment rolled?): the next open checks that index against the log");
            }
            else if (!checksum.Matches(bytes))
            {
                TransactionIndexChecksum found = TransactionIndexChecksum.Of(segment.BaseOffset, bytes);
                Add(FindingSeverity.Error, File.Exists(index) ? index : segment.LogPath, null,
                    $"the .txnindex ({(File.Exists(index) ? $"{bytes.Length} bytes, CRC-32C 0x{found.Crc:x8}" : "missing")}) does not match its checksum in {TransactionIndexChecksums.FileName} ({checksum.Entries} entries, CRC-32C 0x{checksum.Crc:x8}): it changed after it was written; the next open checks it against the log and rewrites it");
            }
        }
    }

    private void VerifySnapshots(string dir, long logEnd)
    {
        foreach (string file in Directory.GetFiles(dir, "*.snapshot").Order(StringComparer.Ordinal))
        {
            _report.Snapshots++;
            if (!DataDirectory.TryParseOffsetName(file, out long offset))
            {
                Add(FindingSeverity.Warning, file, null, "not named like a producer snapshot (20-digit offset); the store ignores it");
                continue;
            }

            var state = new ProducerStateManager(Path.GetFileName(dir));
            try
            {
                state.LoadSnapshot(OsFileSystem.Instance, file);
            }
            catch (CorruptIndexException e)
            {
                Add(FindingSeverity.Error, file, null, StripFile(e.Message, e.FilePath) + " (the store ignores this snapshot and replays the log instead)");
                continue;
            }
            catch (IOException e)
            {
                // While the store is open, a roll deletes all but the two newest snapshots.
                Add(_storeOpen ? FindingSeverity.Warning : FindingSeverity.Error, file, null, "cannot be read: " + e.Message);
                continue;
            }

            if (offset > logEnd)
            {
                if (_clean)
                {
                    // After a clean close the log ended at least where this snapshot was taken.
                    Add(FindingSeverity.Error, file, null, $"snapshot at offset {offset} is beyond the log end offset {logEnd}: offsets {logEnd}..{offset - 1} are missing from a cleanly closed store");
                }
                else
                {
                    Add(FindingSeverity.Warning, file, null, $"snapshot at offset {offset} is beyond the log end offset {logEnd}; the store deletes it at the next open");
                }
            }

            foreach ((long pid, short _, long first) in state.OngoingTransactions())
            {
                if (first >= offset)
                {
                    Add(FindingSeverity.Error, file, null, $"says producer {pid} has a transaction open since offset {first}, not below the snapshot's own offset {offset}");
                }
            }
        }
    }

    private void VerifyCheckpoints(long redoLogStart)
    {
        string dir = Path.Combine(_directory.Path, DataDirectory.CheckpointDirectoryName);
        if (!Directory.Exists(dir))
        {
            return;
        }

        var valid = new List<(long Ts, long Redo)>();
        foreach (string file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
        {
            if (file.EndsWith(".tmp", StringComparison.Ordinal))
            {
                Add(FindingSeverity.Warning, file, null, "leftover of an interrupted checkpoint (ignored by the store)");
                continue;
            }

            if (!file.EndsWith(".ckpt", StringComparison.Ordinal))
            {
                continue;
            }

            _report.Checkpoints++;
            if (!CheckpointFile.TryParseName(file, out long ts, out long redo))
            {
                Add(FindingSeverity.Warning, file, null, "not named like a checkpoint (checkpoint-{ts}-{redoOffset}.ckpt); the store ignores it");
                continue;
            }

            try
            {
                if (CheckpointFile.Validate(file, ts, redo, out _, out _) is { } problem)
                {
                    Add(FindingSeverity.Error, file, problem.Position, problem.Problem + " (the store skips this checkpoint)");
                    continue;
                }
            }
            catch (IOException e)
            {
                Add(FindingSeverity.Error, file, null, "cannot be read: " + e.Message);
                continue;
            }

            valid.Add((ts, redo));
        }

        if (valid.Count > 0)
        {
            (long ts, long redo) = valid.MaxBy(v => v.Ts);
            if (redo < redoLogStart)
            {
                Add(FindingSeverity.Error, dir, null, $"the newest valid checkpoint (ts {ts}) needs redo from offset {redo}, but {Mvcc.TransactionEngine.RedoTopic} starts at {redoLogStart}: opening the transaction engine fails");
            }
        }
    }

    // ---------------------------------------------------------------- helpers

    private void Progress(ScanItem item)
    {
        _bytesDone += item.Length;
        if (_progress is not null && (item.Kind == ScanItemKind.End || _bytesDone - _bytesReported >= 1 << 20))
        {
            _bytesReported = _bytesDone;
            _progress(_bytesDone);
        }
    }

    private void Add(FindingSeverity severity, string path, long? position, string message)
    {
        string file = _directory.Relative(path);
        int count = _perFile.GetValueOrDefault(file) + 1;
        _perFile[file] = count;
        if (count <= MaxFindingsPerFile)
        {
            _report.Findings.Add(new VerifyFinding(severity, file, position, message));
            return;
        }

        (int errors, int warnings) = _unlisted.GetValueOrDefault(file);
        _unlisted[file] = severity == FindingSeverity.Error ? (errors + 1, warnings) : (errors, warnings + 1);
    }

    // One finding per file that hit the limit, counting what was left out; an error if any left-out
    // finding was one (the exit code must not depend on the limit).
    private void AddUnlistedSummaries()
    {
        foreach ((string file, (int errors, int warnings)) in _unlisted)
        {
            _report.Findings.Add(new VerifyFinding(errors > 0 ? FindingSeverity.Error : FindingSeverity.Warning, file, null,
                $"{errors + warnings} more problems in this file are not listed ({errors} errors, {warnings} warnings; the limit is {MaxFindingsPerFile} per file)"));
        }
    }

    private static string StripFile(string message, string path)
    {
        string suffix = $" (file '{path}')";
        return message.EndsWith(suffix, StringComparison.Ordinal) ? message[..^suffix.Length] : message;
    }

    // Open transactions and ABORT markers seen in log order (mirrors the producer-state rule).
    private sealed class TransactionTracker
    {
        private readonly Dictionary<long, long> _open = new();

        /// <summary>The partition's log start offset (retention may have removed a transaction's first records).</summary>
        public long LogStartOffset { get; init; }

        public List<(long Producer, long? First, long Marker)> Aborted { get; } = new();

        public void Observe(RecordBatch batch)
        {
            if (batch.ProducerId < 0)
            {
                return;
            }

            if (!batch.IsControl)
            {
                if (batch.IsTransactional)
                {
                    _open.TryAdd(batch.ProducerId, batch.BaseOffset);
                }

                return;
            }

            ControlRecordType? type = null;
            try
            {
                // The enumeration itself throws when the records do not decode (under a valid CRC).
                foreach (Record record in batch)
                {
                    type = ControlRecord.ReadType(record.Key);
                    break;
                }
            }
            catch (CorruptRecordException)
            {
                return; // reported by CheckBatch
            }

            bool wasOpen = _open.Remove(batch.ProducerId, out long first);
            if (type == ControlRecordType.Abort)
            {
                Aborted.Add((batch.ProducerId, wasOpen ? first : null, batch.LastOffset));
            }
        }
    }
}
