using TxLog.Durability;
using TxLog.Records;
using TxLog.Tests.Recovery;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Faults;

/// <summary>
/// A write to a segment fails (an I/O error, a full disk), possibly after part of the batch reached
/// the file. The append must throw <see cref="LogWriteException"/>; the partition must refuse every
/// later write (what reached the disk is unknown) even once the disk works again; readers must never
/// see the half-written batch; and after a reopen on the real file system every acknowledged append
/// must be there, intact, with the partial batch gone.
/// </summary>
[TestFixture]
public sealed class WriteFaultTests : FaultFixture
{
    private const int Acknowledged = 6;

    /// <summary>Records of one size (ids of six digits), so every single-record batch has the same length.</summary>
    internal static TestRecord Record(int id) =>
        new(Bytes($"key-{id:D6}"), Bytes($"value-{id:D6}-" + new string('v', 40)), SampleBatches.T0 + id, ("id", Bytes($"{id:D6}")));

    [Test]
    public void AFailedWriteStopsThePartitionAndKeepsEveryAcknowledgedAppend(
        [Values] bool appendAsync, [Values(0, 1, 12, 61, 80)] int partialBytes)
    {
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs, preallocate: false)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            var acked = new List<TestRecord[]>();
            for (int id = 0; id < Acknowledged; id++)
            {
                AppendOne(partition, appendAsync, Record(id));
                acked.Add([Record(id)]);
            }

            long batchSize = new FileInfo(LogFile(Dir.Path)).Length / Acknowledged;
            Assume.That(partialBytes, Is.LessThan(batchSize), "the partial write must be shorter than a batch");
            using LogReader tailReader = partition.OpenReader(partition.LogEndOffset);

            Fs.FailWrite(partialBytes: partialBytes);
            LogWriteException? failure = Assert.Throws<LogWriteException>(() => AppendOne(partition, appendAsync, Record(100)));
            Assert.That(failure!.InnerException, Is.InstanceOf<IOException>().With.Message.Contains(FaultyFileSystem.InjectedMessage));
            Assert.That(new FileInfo(LogFile(Dir.Path)).Length, Is.EqualTo(Acknowledged * batchSize + partialBytes), "precondition: the fault left a partial batch");

            // The disk works again, but the partition does not know what it holds: it stays stopped.
            Assert.Throws<LogWriteException>(() => AppendOne(partition, appendAsync, Record(101)));
            Assert.That(Fs.Faults, Is.EqualTo(1), "the refused append did not reach the file system");

            Assert.That(partition.LogEndOffset, Is.EqualTo(Acknowledged));
            Assert.That(partition.HighWatermark, Is.LessThanOrEqualTo(Acknowledged));
            Assert.That(tailReader.TryRead(out _), Is.False, "a reader at the end sees nothing of the failed batch");
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(acked)[..(int)partition.HighWatermark]));
        }

        Assert.That(File.Exists(MarkerFile(Dir.Path)), Is.False, "a store that lost a write must not claim a clean shutdown");
        ReopenAndCheck(Acknowledged, truncatedBytes: partialBytes);
    }

    [Test]
    public void AFullDiskFailsTheAppendThatDoesNotFitAndKeepsEveryAcknowledgedAppend(
        [Values(DurabilityMode.GroupCommit, DurabilityMode.None)] DurabilityMode durability, [Values(1, 12, 61, 100)] int spareBytes)
    {
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs, durability, preallocate: false)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            for (int id = 0; id < Acknowledged; id++)
            {
                AppendOne(partition, appendAsync: true, Record(id));
            }

            long batchSize = new FileInfo(LogFile(Dir.Path)).Length / Acknowledged;
            Assume.That(spareBytes, Is.LessThan(batchSize));
            Fs.DiskBudgetBytes = spareBytes;

            Assert.ThrowsAsync<LogWriteException>(async () => await partition.AppendAsync(Record(100).ToMessage()));
            Assert.That(new FileInfo(LogFile(Dir.Path)).Length, Is.EqualTo(Acknowledged * batchSize + spareBytes), "precondition: the disk took what fitted");

            Fs.DiskBudgetBytes = null; // space freed: still no writes until the store is reopened
            Assert.ThrowsAsync<LogWriteException>(async () => await partition.AppendAsync(Record(101).ToMessage()));
            Assert.That(partition.LogEndOffset, Is.EqualTo(Acknowledged));
            Assert.That(partition.HighWatermark, Is.EqualTo(Acknowledged));
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(Ids(Acknowledged))));
        }

        ReopenAndCheck(Acknowledged, truncatedBytes: spareBytes);
    }

    [Test]
    public void AFullDiskInTheMiddleOfConcurrentAppendsLosesNoAcknowledgedAppend([Values(3, 17)] int writers, [Values] bool preallocate)
    {
        // Many writers append until the disk fills; those acknowledged must all survive, each intact at
        // the offset it was given, whatever the interleaving.
        var acked = new System.Collections.Concurrent.ConcurrentDictionary<long, TestRecord>();
        int failures = 0;
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs, preallocate: preallocate)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            Fs.DiskBudgetBytes = 40_000;
            Task[] tasks = Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (int i = 0; ; i++)
                {
                    TestRecord record = Record(w * 10_000 + i);
                    try
                    {
                        AppendResult result = await partition.AppendAsync(record.ToMessage());
                        acked[result.BaseOffset] = record;
                    }
                    catch (LogWriteException)
                    {
                        Interlocked.Increment(ref failures);
                        return;
                    }
                }
            })).ToArray();
            Assert.That(Task.WhenAll(tasks).Wait(TimeSpan.FromSeconds(30)), Is.True, "every writer stopped at the full disk");
        }

        Assert.That(failures, Is.EqualTo(writers));
        Assert.That(acked, Is.Not.Empty);
        using LogStore reopened = LogStore.Open(Dir.Path, Options());
        LogPartition p = reopened.GetPartition(Topic, 0);
        List<string> all = ReadAll(p);
        Assert.That(all, Has.Count.EqualTo(p.LogEndOffset), "dense offsets from 0");
        foreach ((long offset, TestRecord record) in acked)
        {
            Assert.That(all[(int)offset], Is.EqualTo(Describe([[record]], offset)[0]), $"acknowledged record at {offset}");
        }
    }

    public enum RollStep
    {
        LogFsync,
        IndexFsync,
    }

    [Test]
    public void AFailureWhileRollingASegmentStopsThePartitionAndKeepsEveryAcknowledgedAppend([Values] RollStep failing)
    {
        // Small segments: the append that does not fit rolls first (fsync the old .log, write and
        // fsync its indexes, create the next segment), and the fault hits that roll.
        const int segmentBytes = 1024;
        LogStoreOptions options = Options(Fs, preallocate: false);
        options.SegmentBytes = segmentBytes;
        options.MaxBatchBytes = segmentBytes;
        Fs.Targets = failing == RollStep.LogFsync
            ? static path => path.EndsWith(".log", StringComparison.Ordinal)
            : static path => path.EndsWith(".index", StringComparison.Ordinal);
        int acknowledged = 0;
        using (LogStore store = LogStore.Open(Dir.Path, options))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            AppendOne(partition, appendAsync: true, Record(acknowledged++));
            long batchSize = new FileInfo(LogFile(Dir.Path)).Length;
            while ((acknowledged + 1) * batchSize <= segmentBytes)
            {
                AppendOne(partition, appendAsync: true, Record(acknowledged++));
            }

            Assert.That(partition.SegmentCount, Is.EqualTo(1), "precondition: the next append rolls");
            Fs.FailSync();
            Assert.Throws<LogWriteException>(() => AppendOne(partition, appendAsync: true, Record(acknowledged)));
            Assert.That(Fs.Faults, Is.EqualTo(1), "precondition: the roll met the fault");
            Assert.Throws<LogWriteException>(() => AppendOne(partition, appendAsync: true, Record(acknowledged + 1)));
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(Ids(acknowledged))));
        }

        using (LogStore store = LogStore.Open(Dir.Path, Options()))
        {
            LogPartition partition = store.GetPartition(Topic, 0);
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(Ids(acknowledged))));
            Assert.That(partition.Append(Record(200).ToMessage()).BaseOffset, Is.EqualTo(acknowledged));
        }
    }

    private static List<TestRecord[]> Ids(int count) => Enumerable.Range(0, count).Select(id => new[] { Record(id) }).ToList();

    private static void AppendOne(LogPartition partition, bool appendAsync, TestRecord record)
    {
        if (appendAsync)
        {
            // Bounded: a hang is a failure, not a stuck test run.
            Task<AppendResult> task = partition.AppendAsync(record.ToMessage()).AsTask();
            if (!task.Wait(TimeSpan.FromSeconds(10)))
            {
                Assert.Fail("AppendAsync did not complete within 10 s");
            }
        }
        else
        {
            partition.Append(record.ToMessage());
        }
    }

    // Reopens on the real file system: the acknowledged records, nothing of the failed batch, and the log writable again.
    private void ReopenAndCheck(int acknowledged, long truncatedBytes)
    {
        using (LogStore store = LogStore.Open(Dir.Path, Options()))
        {
            Assert.That(store.Recovery.CleanShutdown, Is.False);
            Assert.That(store.Recovery.TruncatedBytes, Is.EqualTo(truncatedBytes), "the partial batch was cut off");
            LogPartition partition = store.GetPartition(Topic, 0);
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(Ids(acknowledged))));
            Assert.That(partition.Append(Record(200).ToMessage()).BaseOffset, Is.EqualTo(acknowledged));
        }

        using (LogStore store = LogStore.Open(Dir.Path, Options()))
        {
            Assert.That(ReadAll(store.GetPartition(Topic, 0)), Is.EqualTo(Describe([.. Ids(acknowledged), [Record(200)]])));
        }
    }
}
