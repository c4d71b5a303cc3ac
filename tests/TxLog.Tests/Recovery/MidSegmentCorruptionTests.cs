using TxLog.Records;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Recovery;

/// <summary>
/// DESIGN.md §3: corruption inside committed data is reported with a typed exception naming file and
/// position, never silently skipped. A bit is flipped in a batch that valid batches follow (every
/// byte of it, in turn): after a crash, open must refuse with <see cref="CorruptRecordException"/> and
/// leave the file alone; in a cleanly closed store (nothing scanned at open) a reader must stop at
/// that batch with the same exception, having returned exactly the records before it.
/// </summary>
[TestFixture]
public sealed class MidSegmentCorruptionTests
{
    private const int Damaged = 2; // of the five sample batches: two before it, two after

    private static readonly TestRecord[][] Batches = SampleBatches.All;

    private ScratchDirectory _dir = null!;
    private Dictionary<string, byte[]> _pristine = null!;
    private List<(long Position, int Size)> _layout = null!;
    private List<long> _baseOffsets = null!;

    [SetUp]
    public void WriteFiveBatches()
    {
        _dir = new ScratchDirectory();

        // An offset index entry per batch: a clean open then reads only the last batch, so the damaged
        // one is first met by a reader.
        LogStoreOptions options = Options();
        options.IndexIntervalBytes = 1;
        using (LogStore store = LogStore.Open(_dir.Path, options))
        {
            store.CreateTopic(Topic);
            _baseOffsets = AppendBatches(store.GetPartition(Topic, 0), Batches);
        }

        _pristine = Snapshot(_dir.Path);
        _layout = WalkBatches(LogFile(_dir.Path));
        Assert.That(_layout, Has.Count.EqualTo(Batches.Length), "precondition: one segment, one batch per append");
    }

    [TearDown]
    public void DeleteDirectory() => _dir.Dispose();

    [Test]
    public void AfterACrashOpenReportsTheDamagedBatchAndLeavesTheFileAlone()
    {
        (long position, int size) = _layout[Damaged];
        var problems = new Problems();
        for (int offsetInBatch = 0; offsetInBatch < size; offsetInBatch++)
        {
            foreach (int bit in SampleBatches.BitsToFlip(offsetInBatch))
            {
                int at = offsetInBatch;
                problems.Run($"bit {bit} of byte {at} of batch {Damaged}", p =>
                {
                    Restore(_dir.Path, _pristine);
                    SampleBatches.FlipBit(LogFile(_dir.Path), position + at, bit);
                    byte[] damaged = File.ReadAllBytes(LogFile(_dir.Path));
                    RemoveCleanShutdownMarker(_dir.Path);
                    try
                    {
                        using LogStore store = LogStore.Open(_dir.Path, Options(NoSyncFileSystem.Instance));
                        p.Add($"open succeeded with LogEndOffset {store.GetPartition(Topic, 0).LogEndOffset}");
                    }
                    catch (CorruptRecordException e)
                    {
                        p.Equal(LogFile(_dir.Path), e.FilePath, "FilePath");
                        p.Equal(position, e.Position, "Position");
                        p.Check(e.Message.Contains(LogFile(_dir.Path), StringComparison.Ordinal), "the message names the file: " + e.Message);
                    }

                    p.Check(damaged.AsSpan().SequenceEqual(File.ReadAllBytes(LogFile(_dir.Path))), "the failed open changed the .log file");
                });
            }
        }

        problems.AssertNone();
    }

    [Test]
    public void InACleanStoreReadingAcrossTheDamagedBatchThrowsAfterExactlyTheRecordsBeforeIt()
    {
        (long position, int size) = _layout[Damaged];
        List<string> before = Describe(Batches[..Damaged]);
        var problems = new Problems();
        for (int offsetInBatch = 0; offsetInBatch < size; offsetInBatch++)
        {
            // The partition leader epoch (bytes 12-15) is neither in the CRC nor part of the data a
            // reader returns; recovery checks it (see TornTailTests), a reader need not.
            if (offsetInBatch is >= RecordBatchLayout.PartitionLeaderEpochOffset and < RecordBatchLayout.MagicOffset)
            {
                continue;
            }

            foreach (int bit in SampleBatches.BitsToFlip(offsetInBatch))
            {
                int at = offsetInBatch;
                problems.Run($"bit {bit} of byte {at} of batch {Damaged}", p =>
                {
                    Restore(_dir.Path, _pristine);
                    SampleBatches.FlipBit(LogFile(_dir.Path), position + at, bit);
                    using LogStore store = LogStore.Open(_dir.Path, Options(NoSyncFileSystem.Instance));
                    p.Equal(true, store.Recovery.CleanShutdown, "CleanShutdown");
                    p.Equal(0, store.Recovery.ScannedSegments, "ScannedSegments");
                    LogPartition partition = store.GetPartition(Topic, 0);
                    p.Equal(_baseOffsets[^1] + Batches[^1].Length, partition.LogEndOffset, "LogEndOffset");

                    // From the start: the records before the damage, then the exception.
                    CheckReadStopsAtDamage(p, partition, from: 0, expectedBefore: before, position);

                    // From an offset inside the damaged batch: the exception at once.
                    CheckReadStopsAtDamage(p, partition, from: _baseOffsets[Damaged] + 1, expectedBefore: [], position);
                });
            }
        }

        problems.AssertNone();
    }

    [Test]
    public void InACleanStoreADamagedBatchInTheTailThatOpenReadsIsReportedAtOpen([Values(2, 4)] int damaged)
    {
        // A clean open reads the batches after the last offset index entry to find the log end
        // offset. With the default index interval (4 KiB) these small batches get no entry, so open
        // reads them all; a damaged one must stop the open, not yield a wrong log end offset.
        using var dir = new ScratchDirectory();
        using (LogStore store = LogStore.Open(dir.Path, Options()))
        {
            store.CreateTopic(Topic);
            AppendBatches(store.GetPartition(Topic, 0), Batches);
        }

        Assert.That(new FileInfo(SegmentFile(dir.Path, 0, ".index")).Length, Is.Zero, "precondition: no index entry");
        Dictionary<string, byte[]> pristine = Snapshot(dir.Path);
        (long position, int size) = WalkBatches(LogFile(dir.Path))[damaged];
        var problems = new Problems();
        for (int offsetInBatch = 0; offsetInBatch < size; offsetInBatch++)
        {
            if (offsetInBatch is >= RecordBatchLayout.PartitionLeaderEpochOffset and < RecordBatchLayout.MagicOffset)
            {
                continue; // not data; see above
            }

            foreach (int bit in SampleBatches.BitsToFlip(offsetInBatch))
            {
                int at = offsetInBatch;
                problems.Run($"bit {bit} of byte {at} of batch {damaged}", p =>
                {
                    Restore(dir.Path, pristine);
                    SampleBatches.FlipBit(LogFile(dir.Path), position + at, bit);
                    try
                    {
                        using LogStore store = LogStore.Open(dir.Path, Options(NoSyncFileSystem.Instance));
                        p.Add($"open succeeded with LogEndOffset {store.GetPartition(Topic, 0).LogEndOffset}");
                    }
                    catch (CorruptRecordException e)
                    {
                        p.Equal(LogFile(dir.Path), e.FilePath, "FilePath");
                        p.Equal(position, e.Position, "Position");
                    }
                });
            }
        }

        problems.AssertNone();
    }

    private void CheckReadStopsAtDamage(Problems p, LogPartition partition, long from, List<string> expectedBefore, long damagedPosition)
    {
        var read = new List<string>();
        using LogReader reader = partition.OpenReader(from);
        try
        {
            while (reader.TryRead(out Record record))
            {
                read.Add(Describe(record));
            }

            p.Add($"reading from {from} ended without an exception after {read.Count} records");
        }
        catch (CorruptRecordException e)
        {
            p.Equal(LogFile(_dir.Path), e.FilePath, $"FilePath (read from {from})");
            p.Equal(damagedPosition, e.Position, $"Position (read from {from})");
        }

        p.SameRecords(expectedBefore, read, $"records read from {from} before the exception");
    }
}
