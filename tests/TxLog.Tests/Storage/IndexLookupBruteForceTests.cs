using TxLog.Durability;
using TxLog.Records;
using TxLog.Tests.Storage;

namespace TxLog.Tests.Storage;

public sealed class IndexLookupBruteForceTests
{
    private static readonly long Base = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 3_600_000;

    [TestCase(1, 0, 24, 300)]
    [TestCase(2, 50, 36, 700)]
    [TestCase(3, 200, 1 << 20, 2000)]
    [TestCase(4, 0, 12, 500)]
    [TestCase(5, 100, 96, 400)]
    public void Offset_and_timestamp_lookups_match_a_brute_force_scan_live_after_reopen_and_after_a_crash(int seed, int interval, int maxIndexBytes, int segmentBytes)
    {
        using var dir = new TempDirectory();
        using var image = new TempDirectory();
        LogStoreOptions Options() => new()
        {
            Durability = DurabilityMode.None,
            SegmentBytes = segmentBytes,
            IndexIntervalBytes = interval,
            MaxIndexBytes = maxIndexBytes,
        };
        var rng = new Random(seed);
        var timestamps = new List<long>();
        LogStore store = LogStore.Open(dir.Path, Options());
        try
        {
            store.CreateTopic("t");
            LogPartition p = store.GetPartition("t", 0);
            long ts = Base;
            for (int b = 0; b < 120; b++)
            {
                int n = rng.Next(1, 5);
                var batch = new Message[n];
                for (int i = 0; i < n; i++)
                {
                    ts += rng.Next(-30, 40); // equal and decreasing timestamps too
                    batch[i] = new Message(new byte[rng.Next(0, 60)]) { Timestamp = ts };
                    timestamps.Add(ts);
                }

                p.Append(batch);
                if (b == 60)
                {
                    // A clean close in the middle: the active segment's indexes get their final entries.
                    store.Dispose();
                    store = LogStore.Open(dir.Path, Options());
                    p = store.GetPartition("t", 0);
                }
            }

            Check(p, timestamps, "live");
            TestRecords.CopyImage(dir.Path, image.Path);
        }
        finally
        {
            store.Dispose();
        }

        using (LogStore reopened = LogStore.Open(dir.Path, Options()))
        {
            Check(reopened.GetPartition("t", 0), timestamps, "clean reopen");
        }

        using (LogStore crashed = LogStore.Open(image.Path, Options()))
        {
            Check(crashed.GetPartition("t", 0), timestamps, "crash image");
        }
    }

    private static void Check(LogPartition p, List<long> timestamps, string when)
    {
        Assert.That(p.SegmentCount, Is.GreaterThan(2), "precondition");
        Assert.That(p.HighWatermark, Is.EqualTo(timestamps.Count), when);
        for (int o = 0; o < timestamps.Count; o++)
        {
            using LogReader reader = p.OpenReader(o);
            Assert.That(reader.TryRead(out Record r), Is.True, $"{when}: offset {o}");
            Assert.That(r.Offset, Is.EqualTo(o), when);
            Assert.That(r.Timestamp, Is.EqualTo(timestamps[o]), when);
        }

        long min = timestamps.Min(), max = timestamps.Max();
        for (long t = min - 2; t <= max + 2; t++)
        {
            int expected = timestamps.FindIndex(x => x >= t);
            Assert.That(p.OffsetForTimestamp(t), Is.EqualTo(expected < 0 ? null : (long?)expected), $"{when}: timestamp {t - Base}");
        }
    }
}
