using System.Buffers.Binary;
using System.CommandLine;
using System.Globalization;
using TxLog.Inspection;
using TxLog.Records;
using TxLog.Storage;
using static TxLog.Cli.Commands.CliSupport;

namespace TxLog.Cli.Commands;

/// <summary>
/// <c>txlog dump &lt;segment-file-or-partition-dir&gt;</c>: lists the batches of a <c>.log</c> segment
/// (or of every segment of a partition directory) like Kafka's DumpLogSegments, optionally with their
/// records; also prints the entries of <c>.index</c>, <c>.timeindex</c>, <c>.txnindex</c> and
/// <c>.snapshot</c> files. Damaged data is reported, never fatal. Exit code 1 when a batch has a bad
/// CRC or bytes that are not batches were found (trailing preallocated zeros excepted).
/// </summary>
internal static class DumpCommand
{
    public static Command Create(CliContext context, Option<int> maxBatchBytes)
    {
        var path = new Argument<string>("path") { Description = "A segment file (.log, or .index/.timeindex/.txnindex/.snapshot) or a partition directory" };
        var records = new Option<bool>("--records") { Description = "Print every record: offset, timestamp, key and value (control records: the marker)" };
        var format = new Option<string>("--format")
        {
            Description = "How keys and values are printed: auto (UTF-8 when printable, else hex), utf8 or hex",
            DefaultValueFactory = _ => "auto",
        };
        format.AcceptOnlyFromAmong("auto", "utf8", "hex");
        var command = new Command("dump", "List the batches of a segment file or partition directory (offsets, producer, flags, markers, CRC status)");
        command.Arguments.Add(path);
        command.Options.Add(records);
        command.Options.Add(format);
        command.SetAction(result =>
        {
            BytesFormat bytesFormat = result.GetValue(format) switch
            {
                "hex" => BytesFormat.Hex,
                "utf8" => BytesFormat.Utf8,
                _ => BytesFormat.Auto,
            };
            return Run(context, result.GetRequiredValue(path), result.GetValue(records), bytesFormat, result.GetValue(maxBatchBytes));
        });
        return command;
    }

    private static int Run(CliContext context, string path, bool records, BytesFormat format, int maxBatchBytes)
    {
        // The store directory is the partition directory's parent (a segment file's grandparent).
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        string? storeDirectory = Directory.Exists(full) ? Path.GetDirectoryName(full) : Path.GetDirectoryName(Path.GetDirectoryName(full));
        if (storeDirectory is not null && File.Exists(Path.Combine(storeDirectory, LogStore.LockFileName)))
        {
            CliSupport.WarnIfOpen(context, new DataDirectory(storeDirectory));
        }

        if (Directory.Exists(path))
        {
            List<SegmentFile> segments = DataDirectory.ListSegments(path);
            if (segments.Count == 0)
            {
                throw new UsageException($"'{path}' has no segment files (*.log named by a 20-digit offset); give a partition directory or a file");
            }

            bool ok = true;
            foreach (SegmentFile segment in segments)
            {
                ok &= DumpSegment(context, segment.LogPath, records, format, maxBatchBytes);
            }

            return ok ? Program.ExitOk : Program.ExitProblem;
        }

        if (!File.Exists(path))
        {
            throw new UsageException($"'{path}' does not exist");
        }

        if (Path.GetFileName(path) == TransactionIndexChecksums.FileName)
        {
            return DumpTransactionIndexChecksums(context, path);
        }

        return Path.GetExtension(path) switch
        {
            ".log" => DumpSegment(context, path, records, format, maxBatchBytes) ? Program.ExitOk : Program.ExitProblem,
            ".index" => DumpOffsetIndex(context, path),
            ".timeindex" => DumpTimeIndex(context, path),
            ".txnindex" => DumpTransactionIndex(context, path),
            ".snapshot" => DumpSnapshot(context, path),
            _ => throw new UsageException($"'{path}' is not a file dump understands (.log, .index, .timeindex, .txnindex, .snapshot, {TransactionIndexChecksums.FileName})"),
        };
    }

    // Returns false when damage was found.
    private static bool DumpSegment(CliContext context, string path, bool records, BytesFormat format, int maxBatchBytes)
    {
        TextWriter o = context.Out;
        using var scanner = new SegmentScanner(path, maxBatchBytes);
        o.WriteLine($"Dumping {path} ({Num(scanner.Length)} bytes)");
        if (DataDirectory.TryParseOffsetName(path, out long baseOffset))
        {
            o.WriteLine($"Log starting offset: {Num(baseOffset)}");
        }

        long batches = 0;
        long recordCount = 0;
        long badCrc = 0;
        long first = -1;
        long last = -1;
        bool damaged = false;
        while (true)
        {
            ScanItem item = scanner.Next();
            if (item.Kind == ScanItemKind.End)
            {
                break;
            }

            switch (item.Kind)
            {
                case ScanItemKind.ZeroTail:
                    o.WriteLine($"position: {Num(item.Position)} {Num(item.Length)} bytes of zeros after the data (preallocated space; the store cuts it at close or at the next open)");
                    continue;
                case ScanItemKind.TornTail:
                    damaged = true;
                    o.WriteLine($"position: {Num(item.Position)} torn tail: the last {Num(item.Length)} bytes are not a whole batch ({item.Check})");
                    continue;
                case ScanItemKind.InvalidRegion:
                    damaged = true;
                    o.WriteLine($"position: {Num(item.Position)} {Num(item.Length)} bytes of invalid data ({item.Check}); the next valid batch starts at position {Num(item.Position + item.Length)}");
                    continue;
            }

            var batch = new RecordBatch(item.Bytes.Span);
            bool crcOk = item.Check == BatchCheck.Valid;
            batches++;
            if (!crcOk)
            {
                badCrc++;
                damaged = true;
            }
            else
            {
                first = first < 0 ? batch.BaseOffset : first;
                last = batch.LastOffset;
                recordCount += batch.RecordCount;
            }

            o.WriteLine(DescribeBatch(batch, item, crcOk));
            if (records)
            {
                DumpRecords(o, batch, format);
            }
        }

        string range = first < 0 ? "no valid batches" : $"offsets {Num(first)}..{Num(last)}";
        o.WriteLine($"Summary: {Num(batches)} batches, {Num(recordCount)} records, {range}, {Num(badCrc)} with a bad CRC{(damaged ? ", damaged" : "")}");
        return !damaged;
    }

    private static string DescribeBatch(RecordBatch batch, ScanItem item, bool crcOk)
    {
        string marker = "";
        if (batch.IsControl)
        {
            try
            {
                foreach (Record record in batch)
                {
                    marker = $" marker: {ControlRecord.ReadType(record.Key).ToString().ToUpperInvariant()} coordinatorEpoch: {ControlRecord.ReadCoordinatorEpoch(record.Value)}";
                    break;
                }
            }
            catch (CorruptRecordException e)
            {
                marker = $" marker: invalid ({e.Message})";
            }
        }

        string crc = crcOk
            ? "ok"
            : $"BAD (stored 0x{batch.Crc:x8}, computed 0x{Crc32C.Compute(item.Bytes.Span.Slice(RecordBatchLayout.AttributesOffset)):x8})";
        return string.Create(CultureInfo.InvariantCulture,
            $"baseOffset: {batch.BaseOffset} lastOffset: {batch.LastOffset} count: {batch.RecordCount} position: {item.Position} size: {item.Length} " +
            $"producerId: {batch.ProducerId} producerEpoch: {batch.ProducerEpoch} baseSequence: {batch.BaseSequence} " +
            $"isTransactional: {(batch.IsTransactional ? "true" : "false")} isControl: {(batch.IsControl ? "true" : "false")}{marker} " +
            $"baseTimestamp: {FormatTimestamp(batch.BaseTimestamp)} maxTimestamp: {FormatTimestamp(batch.MaxTimestamp)} crc: {crc}");
    }

    private static void DumpRecords(TextWriter o, RecordBatch batch, BytesFormat format)
    {
        try
        {
            foreach (Record record in batch)
            {
                if (batch.IsControl)
                {
                    string type;
                    string epoch;
                    try
                    {
                        type = ControlRecord.ReadType(record.Key).ToString().ToUpperInvariant();
                        epoch = Num(ControlRecord.ReadCoordinatorEpoch(record.Value));
                    }
                    catch (CorruptRecordException e)
                    {
                        type = "invalid (" + e.Message + ")";
                        epoch = "?";
                    }

                    o.WriteLine($"| offset: {Num(record.Offset)} endTxnMarker: {type} coordinatorEpoch: {epoch}");
                    continue;
                }

                string headers = "";
                if (record.HeaderCount > 0)
                {
                    var parts = new List<string>();
                    foreach (RecordHeaderView header in record.Headers)
                    {
                        parts.Add(FormatBytes(header.Key, true, BytesFormat.Utf8) + "=" + FormatBytes(header.Value, header.HasValue, format));
                    }

                    headers = " headers: [" + string.Join(", ", parts) + "]";
                }

                o.WriteLine($"| offset: {Num(record.Offset)} timestamp: {FormatTimestamp(record.Timestamp)} key: {FormatBytes(record.Key, record.HasKey, format)} value: {FormatBytes(record.Value, record.HasValue, format)}{headers}");
            }
        }
        catch (CorruptRecordException e)
        {
            o.WriteLine($"| records do not decode: {e.Message}");
        }
    }

    private static long BaseOffsetOf(string path) => DataDirectory.TryParseOffsetName(path, out long offset) ? offset : 0;

    private static int DumpOffsetIndex(CliContext context, string path)
    {
        long baseOffset = BaseOffsetOf(path);
        return DumpEntries(context, path, OffsetIndex.EntrySize, e =>
            $"offset: {Num(baseOffset + BinaryPrimitives.ReadInt32BigEndian(e))} position: {Num(BinaryPrimitives.ReadInt32BigEndian(e.Slice(4)))}");
    }

    private static int DumpTimeIndex(CliContext context, string path)
    {
        long baseOffset = BaseOffsetOf(path);
        return DumpEntries(context, path, TimeIndex.EntrySize, e =>
        {
            long timestamp = BinaryPrimitives.ReadInt64BigEndian(e);
            return $"timestamp: {Num(timestamp)} ({FormatTimestamp(timestamp)}) offset: {Num(baseOffset + BinaryPrimitives.ReadInt32BigEndian(e.Slice(8)))}";
        });
    }

    private static int DumpTransactionIndex(CliContext context, string path) =>
        DumpEntries(context, path, TransactionIndex.EntrySize, e =>
            $"version: {BinaryPrimitives.ReadInt16BigEndian(e)} producerId: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(2)))} " +
            $"firstOffset: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(10)))} lastOffset: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(18)))} " +
            $"lastStableOffset: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(26)))}");

    // The layout of Storage/TransactionIndexChecksums.cs, decoded by the store's own reader.
    private static int DumpTransactionIndexChecksums(CliContext context, string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        context.Out.WriteLine($"Dumping {path} ({Num(bytes.Length)} bytes)");
        Dictionary<long, TransactionIndexChecksum> segments;
        try
        {
            segments = TransactionIndexChecksums.Decode(bytes, path);
        }
        catch (CorruptIndexException e)
        {
            context.Out.WriteLine("BAD: " + e.Message);
            return Program.ExitProblem;
        }

        context.Out.WriteLine($"version: {TransactionIndexChecksums.CurrentVersion} crc: ok segments: {Num(segments.Count)}");
        foreach (TransactionIndexChecksum c in segments.Values.OrderBy(c => c.SegmentBaseOffset))
        {
            context.Out.WriteLine($"segment: {Num(c.SegmentBaseOffset)} entries: {Num(c.Entries)} crc: 0x{c.Crc:x8}");
        }

        return Program.ExitOk;
    }

    private delegate string EntryFormatter(ReadOnlySpan<byte> entry);

    // A file of fixed-size entries (the three index kinds): a header line, one line per whole entry,
    // then a report of any trailing partial entry.
    private static int DumpEntries(CliContext context, string path, int entrySize, EntryFormatter format)
    {
        byte[] bytes = File.ReadAllBytes(path);
        context.Out.WriteLine($"Dumping {path} ({Num(bytes.Length)} bytes, {Num(bytes.Length / entrySize)} entries)");
        for (int i = 0; i + entrySize <= bytes.Length; i += entrySize)
        {
            context.Out.WriteLine(format(bytes.AsSpan(i, entrySize)));
        }

        return TrailingBytes(context, bytes.Length, entrySize);
    }

    // The producer snapshot layout of Producers/ProducerStateManager.cs:
    // Version int16 (= 1), Crc uint32 (CRC-32C of the entries), Entry* (46 bytes).
    private static int DumpSnapshot(CliContext context, string path)
    {
        const int headerSize = 6;
        const int entrySize = 46;
        byte[] bytes = File.ReadAllBytes(path);
        context.Out.WriteLine($"Dumping {path} ({Num(bytes.Length)} bytes)");
        if (bytes.Length < headerSize)
        {
            context.Out.WriteLine("not a producer snapshot: shorter than its 6-byte header");
            return Program.ExitProblem;
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(bytes);
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2));
        uint actual = Crc32C.Compute(bytes.AsSpan(headerSize));
        bool ok = stored == actual && version == Producers.ProducerStateManager.SnapshotVersion && (bytes.Length - headerSize) % entrySize == 0;
        context.Out.WriteLine($"version: {version} crc: {(stored == actual ? "ok" : $"BAD (stored 0x{stored:x8}, computed 0x{actual:x8})")} entries: {Num((bytes.Length - headerSize) / entrySize)}");
        for (int p = headerSize; p + entrySize <= bytes.Length; p += entrySize)
        {
            ReadOnlySpan<byte> e = bytes.AsSpan(p, entrySize);
            context.Out.WriteLine(
                $"producerId: {Num(BinaryPrimitives.ReadInt64BigEndian(e))} epoch: {BinaryPrimitives.ReadInt16BigEndian(e.Slice(8))} " +
                $"lastSequence: {Num(BinaryPrimitives.ReadInt32BigEndian(e.Slice(10)))} lastOffset: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(14)))} " +
                $"offsetDelta: {Num(BinaryPrimitives.ReadInt32BigEndian(e.Slice(22)))} timestamp: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(26)))} " +
                $"coordinatorEpoch: {Num(BinaryPrimitives.ReadInt32BigEndian(e.Slice(34)))} currentTxnFirstOffset: {Num(BinaryPrimitives.ReadInt64BigEndian(e.Slice(38)))}");
        }

        return ok & TrailingBytes(context, bytes.Length - headerSize, entrySize) == Program.ExitOk ? Program.ExitOk : Program.ExitProblem;
    }

    private static int TrailingBytes(CliContext context, int length, int entrySize)
    {
        if (length % entrySize == 0)
        {
            return Program.ExitOk;
        }

        context.Out.WriteLine($"{Num(length % entrySize)} trailing bytes: the size is not a multiple of the {Num(entrySize)}-byte entry");
        return Program.ExitProblem;
    }
}
