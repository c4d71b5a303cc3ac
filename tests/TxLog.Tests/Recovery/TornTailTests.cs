using TxLog.Storage;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Recovery;

/// <summary>
/// DESIGN.md §3: after a crash, recovery truncates a torn or corrupt tail back to the last valid batch.
/// Five known batches are written and closed cleanly; then the last batch is damaged in every way a
/// crash or a bad disk can (cut at every length, one bit flipped at every byte, garbage appended),
/// the clean-shutdown marker removed, and the store reopened: exactly the batches before the damage
/// must be there, the file cut back to them, and appends must go on from there and survive a reopen.
/// </summary>
[TestFixture]
public sealed class TornTailTests
{
    private static readonly TestRecord[][] Batches = SampleBatches.All;
    private static readonly TestRecord[] Extra = SampleBatches.Extra;

    private ScratchDirectory _dir = null!;
    private Dictionary<string, byte[]> _pristine = null!;
    private List<(long Position, int Size)> _layout = null!;
    private List<long> _baseOffsets = null!;

    [SetUp]
    public void WriteFiveBatches()
    {
        _dir = new ScratchDirectory();
        using (LogStore store = LogStore.Open(_dir.Path, Options()))
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

    private (long Position, int Size) Last => _layout[^1];

    [Test]
    public void TruncatingTheLastBatchAtAnyLengthLeavesExactlyThePrecedingBatches()
    {
        var problems = new Problems();
        for (long length = Last.Position; length < Last.Position + Last.Size; length++)
        {
            long cut = length;
            problems.Run($"truncated to {cut}", p =>
            {
                Restore(_dir.Path, _pristine);
                using (FileStream log = File.OpenWrite(LogFile(_dir.Path)))
                {
                    log.SetLength(cut);
                }

                RemoveCleanShutdownMarker(_dir.Path);
                RecoverAndCheck(p, keptBatches: Batches.Length - 1, damagedLength: cut, NoSyncFileSystem.Instance);
            });
        }

        problems.AssertNone();
    }

    [Test]
    public void ALastBatchWrittenOnlyUpToAnyByteIntoPreallocatedZerosLeavesExactlyThePrecedingBatches()
    {
        // The crash shape under preallocation: the file keeps its length, the batch's bytes reached
        // it up to some point, zeros (written ahead earlier) follow.
        const int zerosAfter = 4096;
        var problems = new Problems();
        for (long written = Last.Position; written < Last.Position + Last.Size; written++)
        {
            long cut = written;
            problems.Run($"written up to {cut}", p =>
            {
                Restore(_dir.Path, _pristine);
                using (FileStream log = File.OpenWrite(LogFile(_dir.Path)))
                {
                    log.Position = cut;
                    log.Write(new byte[Last.Position + Last.Size - cut + zerosAfter]);
                }

                RemoveCleanShutdownMarker(_dir.Path);
                RecoverAndCheck(p, keptBatches: Batches.Length - 1, damagedLength: Last.Position + Last.Size + zerosAfter, NoSyncFileSystem.Instance);
            });
        }

        problems.AssertNone();
    }

    [Test]
    public void FlippingAnyBitOfTheLastBatchLeavesExactlyThePrecedingBatches()
    {
        // Every bit of the 61-byte header (fields outside the CRC included); one bit per byte of the records.
        var problems = new Problems();
        for (int offsetInBatch = 0; offsetInBatch < Last.Size; offsetInBatch++)
        {
            foreach (int bit in SampleBatches.BitsToFlip(offsetInBatch))
            {
                long position = Last.Position + offsetInBatch;
                problems.Run($"bit {bit} of byte {offsetInBatch} of the last batch", p =>
                {
                    Restore(_dir.Path, _pristine);
                    SampleBatches.FlipBit(LogFile(_dir.Path), position, bit);
                    RemoveCleanShutdownMarker(_dir.Path);
                    RecoverAndCheck(p, keptBatches: Batches.Length - 1, damagedLength: _pristine[RelativeLog].Length, NoSyncFileSystem.Instance);
                });
            }
        }

        problems.AssertNone();
    }

    public enum Garbage
    {
        Zeros,
        RandomBytes,
        StaleCopyOfFirstBatch,
        StaleCopyOfLastBatch,
    }

    [Test]
    public void GarbageAfterTheLastBatchIsTruncated([Values] Garbage kind, [Values(1, 11, 12, 61, 5000)] int length)
    {
        byte[] garbage = MakeGarbage(kind, length);
        using (FileStream log = new(LogFile(_dir.Path), FileMode.Append))
        {
            log.Write(garbage);
        }

        RemoveCleanShutdownMarker(_dir.Path);
        var problems = new Problems();
        RecoverAndCheck(problems, keptBatches: Batches.Length, damagedLength: _pristine[RelativeLog].Length + garbage.Length);
        problems.AssertNone();
    }

    private byte[] MakeGarbage(Garbage kind, int length)
    {
        byte[] log = _pristine[RelativeLog];
        byte[] source = kind switch
        {
            Garbage.Zeros => new byte[length],
            Garbage.RandomBytes => RandomBytes(length),
            Garbage.StaleCopyOfFirstBatch => log.AsSpan((int)_layout[0].Position, _layout[0].Size).ToArray(),
            _ => log.AsSpan((int)Last.Position, Last.Size).ToArray(),
        };

        // A stale batch is repeated or cut to the length asked for.
        byte[] garbage = new byte[length];
        for (int i = 0; i < length; i++)
        {
            garbage[i] = source[i % source.Length];
        }

        return garbage;
    }

    private static byte[] RandomBytes(int length)
    {
        byte[] bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        return bytes;
    }

    private string RelativeLog => Path.GetRelativePath(_dir.Path, LogFile(_dir.Path));

    // Reopens after the simulated crash and checks what survived, then appends and reopens again.
    // The loops over every byte pass the NoSyncFileSystem (hundreds of reopens; fsyncs are not their subject).
    private void RecoverAndCheck(Problems p, int keptBatches, long damagedLength, IFileSystem? fileSystem = null)
    {
        TestRecord[][] kept = Batches[..keptBatches];
        long keptEndOffset = keptBatches == Batches.Length ? _baseOffsets[^1] + Batches[^1].Length : _baseOffsets[keptBatches];
        long keptLength = keptBatches == Batches.Length ? _pristine[RelativeLog].Length : _layout[keptBatches].Position;
        using (LogStore store = LogStore.Open(_dir.Path, Options(fileSystem)))
        {
            p.Equal(false, store.Recovery.CleanShutdown, "CleanShutdown after a crash");
            p.Equal(1 + InternalPartitions(store), store.Recovery.ScannedSegments, "ScannedSegments (the last segment of every partition, internal ones included)");
            p.Equal(damagedLength - keptLength, store.Recovery.TruncatedBytes, "TruncatedBytes");
            LogPartition partition = store.GetPartition(Topic, 0);
            p.Equal(keptEndOffset, partition.LogEndOffset, "LogEndOffset");
            p.Equal(keptEndOffset, partition.HighWatermark, "HighWatermark");
            p.Equal(keptLength, new FileInfo(LogFile(_dir.Path)).Length, ".log length after recovery");
            p.SameRecords(Describe(kept), ReadAll(partition), "records after recovery");
            AppendResult appended = partition.Append(Array.ConvertAll(Extra, r => r.ToMessage()));
            p.Equal(keptEndOffset, appended.BaseOffset, "offset of the first append after recovery");
        }

        using (LogStore store = LogStore.Open(_dir.Path, Options(fileSystem)))
        {
            p.Equal(true, store.Recovery.CleanShutdown, "CleanShutdown of the reopen after recovery");
            LogPartition partition = store.GetPartition(Topic, 0);
            p.Equal(keptEndOffset + Extra.Length, partition.LogEndOffset, "LogEndOffset after the append and a reopen");
            p.SameRecords(Describe([.. kept, Extra]), ReadAll(partition), "records after the append and a reopen");
        }
    }
}
