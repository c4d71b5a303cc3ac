using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

public class RollAndRetentionTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static string[] SegmentNames(string dir, string partitionDir) =>
        Directory.GetFiles(Path.Combine(dir, partitionDir), "*.log").Select(Path.GetFileName).Order().ToArray()!;

    [Test]
    public void Segments_roll_by_size_and_are_named_by_their_20_digit_base_offset()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 1000 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        var batchStarts = new List<long>();
        for (int i = 0; i < 30; i++)
        {
            batchStarts.Add(p.Append([new Message(new byte[100]), new Message(new byte[100])]).BaseOffset);
        }

        string[] names = SegmentNames(dir.Path, "t-0");
        Assert.That(names, Has.Length.GreaterThan(5));
        foreach (string name in names)
        {
            Assert.That(name, Does.Match(@"^\d{20}\.log$"));
            Assert.That(batchStarts, Does.Contain(long.Parse(name[..20])), "each segment starts at a batch boundary");
        }

        foreach (string file in Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.log"))
        {
            Assert.That(new FileInfo(file).Length, Is.LessThanOrEqualTo(1000));
        }

        Assert.That(ReadAll(p, 0), Has.Count.EqualTo(60));
    }

    [Test]
    public void Segment_rolls_when_the_index_is_full()
    {
        using var dir = new TempDirectory();
        // Index of 2 entries (16 bytes), an entry after every batch.
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, MaxIndexBytes = 24, IndexIntervalBytes = 1 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 9; i++)
        {
            p.Append(new Message(Bytes($"v{i}")));
        }

        Assert.That(p.SegmentCount, Is.GreaterThanOrEqualTo(3));
        foreach (string index in Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.index"))
        {
            Assert.That(new FileInfo(index).Length, Is.LessThanOrEqualTo(24));
        }

        Assert.That(ReadAll(p, 0), Has.Count.EqualTo(9));
    }

    [Test]
    public void Segment_rolls_by_age()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start);
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, SegmentAge = TimeSpan.FromHours(1), TimeProvider = clock });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("a")));
        clock.Advance(TimeSpan.FromMinutes(59));
        p.Append(new Message(Bytes("b")));
        Assert.That(p.SegmentCount, Is.EqualTo(1));
        clock.Advance(TimeSpan.FromMinutes(2));
        p.Append(new Message(Bytes("c")));
        Assert.That(p.SegmentCount, Is.EqualTo(2));
        Assert.That(SegmentNames(dir.Path, "t-0"), Is.EqualTo(new[] { "00000000000000000000.log", "00000000000000000002.log" }));
    }

    [Test]
    public void Retention_by_size_deletes_whole_old_segments_and_moves_the_log_start()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 1000, RetentionBytes = 2500 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 40; i++)
        {
            p.Append(new Message(new byte[150]));
        }

        int segmentsBefore = p.SegmentCount;
        int deleted = store.EnforceRetention();
        Assert.That(deleted, Is.GreaterThan(0));
        Assert.That(p.SegmentCount, Is.EqualTo(segmentsBefore - deleted));
        // Kafka's rule: delete the oldest segment while what remains is still at least the limit,
        // so the partition ends between the limit and the limit plus one segment.
        long oldest = new FileInfo(Directory.GetFiles(Path.Combine(dir.Path, "t-0"), "*.log").Order().First()).Length;
        Assert.That(p.SizeInBytes, Is.GreaterThanOrEqualTo(2500));
        Assert.That(p.SizeInBytes - oldest, Is.LessThan(2500), "one more deletion would go below the limit");
        Assert.That(p.LogStartOffset, Is.GreaterThan(0));
        string first = SegmentNames(dir.Path, "t-0")[0];
        Assert.That(long.Parse(first[..20]), Is.EqualTo(p.LogStartOffset));

        Assert.Throws<OffsetOutOfRangeException>(() => p.OpenReader(p.LogStartOffset - 1));
        List<string> rest = ReadAll(p, p.LogStartOffset);
        Assert.That(rest, Has.Count.EqualTo(40 - p.LogStartOffset));
        Assert.That(rest[^1], Does.StartWith("39:"));
    }

    [Test]
    public void Retention_by_age_uses_the_newest_record_of_each_segment_and_never_deletes_the_active_one()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(Start);
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 500,
            RetentionTime = TimeSpan.FromDays(1),
            TimeProvider = clock,
        });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 10; i++)
        {
            p.Append(new Message(new byte[200]));
        }

        long oldEnd = p.LogEndOffset;
        clock.Advance(TimeSpan.FromDays(2));
        p.Append(new Message(new byte[200])); // new data, in a new segment
        Assert.That(store.EnforceRetention(), Is.GreaterThan(0));
        Assert.That(p.LogStartOffset, Is.EqualTo(oldEnd), "every old segment went; the new one stays");

        clock.Advance(TimeSpan.FromDays(5));
        store.EnforceRetention();
        Assert.That(p.SegmentCount, Is.EqualTo(1), "the active segment is never deleted");
        Assert.That(p.LogEndOffset, Is.EqualTo(oldEnd + 1));
    }

    [Test]
    public void Log_start_offset_after_retention_survives_reopen()
    {
        using var dir = new TempDirectory();
        var options = new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 600, RetentionBytes = 1500 };
        long start;
        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            for (int i = 0; i < 30; i++)
            {
                p.Append(new Message(Bytes($"v{i}")) { Key = new byte[100] });
            }

            store.EnforceRetention();
            start = p.LogStartOffset;
            Assert.That(start, Is.GreaterThan(0));
        }

        using (LogStore store = LogStore.Open(dir.Path, options))
        {
            LogPartition p = store.GetPartition("t", 0);
            Assert.That(p.LogStartOffset, Is.EqualTo(start));
            Assert.That(p.LogEndOffset, Is.EqualTo(30));
            Assert.That(ReadAll(p, start)[0], Does.StartWith($"{start}:"));
        }
    }
}
