using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Recovery;

/// <summary>
/// DESIGN.md §3: recovery rebuilds missing or corrupt indexes. A cleanly closed store of several
/// segments, each with a few offset and time index entries, has its <c>.index</c> and/or
/// <c>.timeindex</c> files deleted, cut to an odd size, or overwritten with garbage; on reopen every
/// segment's indexes must be rebuilt, reads by offset and by timestamp must give the answers a plain
/// model of the records gives, and the rebuilt indexes must be kept (the next open rebuilds nothing).
/// </summary>
[TestFixture]
public sealed class IndexRecoveryTests
{
    private const long T0 = 1_700_000_000_000;
    private const int RecordCount = 240;

    private ScratchDirectory _dir = null!;
    private List<TestRecord[]> _batches = null!;
    private List<TestRecord> _records = null!;

    public enum IndexFile
    {
        Offset,
        Time,
        Both,
    }

    public enum Damage
    {
        Deleted,
        CutToOddSize,
        RandomGarbage,
        Zeros,
    }

    [Test]
    public void An_index_entry_that_is_well_formed_but_points_inside_a_batch_does_not_break_reads()
    {
        // Still increasing and inside the log, so the checks at open pass: only reading finds it out.
        foreach (string file in IndexFiles(".index"))
        {
            byte[] bytes = File.ReadAllBytes(file);
            Assert.That(bytes, Has.Length.GreaterThanOrEqualTo(16), $"precondition: {file} has two entries or more");
            int position = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4), position + 1);
            File.WriteAllBytes(file, bytes);
        }

        var loggers = new Diagnostics.ListLoggerFactory();
        LogStoreOptions options = SmallSegments();
        options.LoggerFactory = loggers;
        using (LogStore store = LogStore.Open(_dir.Path, options))
        {
            Assert.That(store.Recovery.RebuiltIndexes, Is.Zero, "precondition: the open did not notice");
            CheckReads(store.GetPartition(Topic, 0));
            Assert.That(loggers.WithId(1005), Is.Not.Empty, "the mismatch is reported");
            string[] logs = Directory.GetFiles(PartitionDirectory(_dir.Path), "*.log").Order(StringComparer.Ordinal).ToArray();
            foreach (string log in logs[..^1])
            {
                // Deleted at once (not only at a clean close), so a crash now cannot keep them.
                Assert.That(File.Exists(Path.ChangeExtension(log, ".index")), Is.False, $"{log}: its wrong index is gone while the store is still open");
            }
        }

        using (LogStore store = LogStore.Open(_dir.Path, SmallSegments()))
        {
            Assert.That(store.Recovery.RebuiltIndexes, Is.GreaterThan(0), "the suspect indexes were dropped at close and rebuilt");
            CheckReads(store.GetPartition(Topic, 0));
        }

        foreach (string file in IndexFiles(".index"))
        {
            byte[] bytes = File.ReadAllBytes(file);
            int position = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(4));
            using FileStream log = File.OpenRead(Path.ChangeExtension(file, ".log"));
            var header = new byte[global::TxLog.Records.RecordBatchLayout.HeaderSize];
            log.Position = position;
            log.ReadExactly(header);
            long lastOffset = System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(header) + System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(global::TxLog.Records.RecordBatchLayout.LastOffsetDeltaOffset));
            long indexed = long.Parse(Path.GetFileNameWithoutExtension(file), System.Globalization.CultureInfo.InvariantCulture) + System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(bytes);
            Assert.That(lastOffset, Is.EqualTo(indexed), $"{file}: the rebuilt first entry points at its batch");
        }
    }

    [SetUp]
    public void WriteSeveralSegments()
    {
        _dir = new ScratchDirectory();
        _batches = [];
        _records = [];
        int i = 0;
        while (i < RecordCount)
        {
            int count = Math.Min(1 + i % 4, RecordCount - i);
            var batch = new TestRecord[count];
            for (int j = 0; j < count; j++, i++)
            {
                // Timestamps mostly rising, every third one older than the one before it.
                long timestamp = T0 + 10 * i - (i % 3 == 0 ? 25 : 0);
                batch[j] = new TestRecord(Bytes($"key-{i}"), Bytes(new string((char)('a' + i % 26), 20 + i * 7 % 150)), timestamp, ("i", Bytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
                _records.Add(batch[j]);
            }

            _batches.Add(batch);
        }

        using LogStore store = LogStore.Open(_dir.Path, SmallSegments());
        store.CreateTopic(Topic);
        AppendBatches(store.GetPartition(Topic, 0), _batches);
        Assert.That(store.GetPartition(Topic, 0).SegmentCount, Is.GreaterThanOrEqualTo(3), "precondition: several segments");
    }

    [TearDown]
    public void DeleteDirectory() => _dir.Dispose();

    private static LogStoreOptions SmallSegments()
    {
        LogStoreOptions options = Options();
        options.MaxBatchBytes = 2048;
        options.SegmentBytes = 8192;
        options.IndexIntervalBytes = 512;
        return options;
    }

    private string[] IndexFiles(string extension) => Directory.GetFiles(PartitionDirectory(_dir.Path), "*" + extension);

    [Test]
    public void ACleanReopenWithValidIndexesScansAndRebuildsNothing()
    {
        using LogStore store = LogStore.Open(_dir.Path, SmallSegments());
        Assert.Multiple(() =>
        {
            Assert.That(store.Recovery.CleanShutdown, Is.True);
            Assert.That(store.Recovery.ScannedSegments, Is.Zero);
            Assert.That(store.Recovery.RebuiltIndexes, Is.Zero);
            Assert.That(store.Recovery.TruncatedBytes, Is.Zero);
        });
        CheckReads(store.GetPartition(Topic, 0));
    }

    [Test]
    public void DamagedIndexesAreRebuiltAndReadsStayCorrect([Values] IndexFile which, [Values] Damage damage)
    {
        string[] damaged = which switch
        {
            IndexFile.Offset => IndexFiles(".index"),
            IndexFile.Time => IndexFiles(".timeindex"),
            _ => [.. IndexFiles(".index"), .. IndexFiles(".timeindex")],
        };
        int segments = Directory.GetFiles(PartitionDirectory(_dir.Path), "*.log").Length;
        var random = new Random(42);
        foreach (string file in damaged)
        {
            byte[] bytes = File.ReadAllBytes(file);

            // Two entries at least, so that zeros (entries not increasing) are malformed.
            Assert.That(bytes, Has.Length.GreaterThanOrEqualTo(24), $"precondition: {file} has two entries or more");
            switch (damage)
            {
                case Damage.Deleted:
                    File.Delete(file);
                    break;
                case Damage.CutToOddSize:
                    File.WriteAllBytes(file, bytes[..(bytes.Length / 2 | 1)]);
                    break;
                case Damage.RandomGarbage:
                    random.NextBytes(bytes);
                    File.WriteAllBytes(file, bytes);
                    break;
                default:
                    File.WriteAllBytes(file, new byte[bytes.Length]);
                    break;
            }
        }

        using (LogStore store = LogStore.Open(_dir.Path, SmallSegments()))
        {
            Assert.Multiple(() =>
            {
                Assert.That(store.Recovery.CleanShutdown, Is.True);
                Assert.That(store.Recovery.ScannedSegments, Is.Zero);
                Assert.That(store.Recovery.RebuiltIndexes, Is.EqualTo(segments), "every segment had a damaged index");
            });
            CheckReads(store.GetPartition(Topic, 0));
        }

        using (LogStore store = LogStore.Open(_dir.Path, SmallSegments()))
        {
            Assert.That(store.Recovery.RebuiltIndexes, Is.Zero, "the rebuilt indexes were kept: " + string.Join("; ", store.Recovery.Actions));
            CheckReads(store.GetPartition(Topic, 0));
        }
    }

    // Reads at every offset and by every interesting timestamp, against the list of records.
    private void CheckReads(LogPartition partition)
    {
        Assert.That(partition.LogEndOffset, Is.EqualTo(_records.Count));
        List<string> all = Describe(_batches);
        Assert.That(ReadAll(partition), Is.EqualTo(all), "everything from offset 0");
        for (int offset = 0; offset < _records.Count; offset++)
        {
            using LogReader reader = partition.OpenReader(offset);
            Assert.That(reader.TryRead(out global::TxLog.Records.Record record), Is.True, $"a record at {offset}");
            Assert.That(Describe(record), Is.EqualTo(all[offset]), $"the record read from offset {offset}");
        }

        var timestamps = new SortedSet<long> { T0 - 1000, T0 + 10 * RecordCount + 1000 };
        foreach (TestRecord r in _records)
        {
            timestamps.Add(r.Timestamp - 1);
            timestamps.Add(r.Timestamp);
            timestamps.Add(r.Timestamp + 1);
        }

        foreach (long timestamp in timestamps)
        {
            // Kafka's offsetsForTimes: the first offset whose timestamp is at or after the target.
            int expected = _records.FindIndex(r => r.Timestamp >= timestamp);
            long? actual = partition.OffsetForTimestamp(timestamp);
            Assert.That(actual, Is.EqualTo(expected < 0 ? null : (long?)expected), $"OffsetForTimestamp({timestamp})");
        }
    }
}
