using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

public class AppendReadTests
{
    [Test]
    public void Offsets_are_dense_and_monotonic_across_batches()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);

        AppendResult a = p.Append([new Message(Bytes("a0")), new Message(Bytes("a1")), new Message(Bytes("a2"))]);
        AppendResult b = p.Append(new Message(Bytes("b0")));
        AppendResult c = p.Append([new Message(Bytes("c0")), new Message(Bytes("c1"))]);

        Assert.That((a.BaseOffset, a.LastOffset, b.BaseOffset, b.LastOffset, c.BaseOffset, c.LastOffset), Is.EqualTo((0L, 2L, 3L, 3L, 4L, 5L)));
        Assert.That(p.LogEndOffset, Is.EqualTo(6));
        Assert.That(ReadAll(p, 0), Is.EqualTo(new[] { "0:null:a0", "1:null:a1", "2:null:a2", "3:null:b0", "4:null:c0", "5:null:c1" }));
    }

    [Test]
    public void Reading_from_the_middle_of_a_batch_starts_at_that_offset()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append([new Message(Bytes("0")), new Message(Bytes("1")), new Message(Bytes("2")), new Message(Bytes("3"))]);

        Assert.That(ReadAll(p, 2), Is.EqualTo(new[] { "2:null:2", "3:null:3" }));
        Assert.That(ReadAll(p, 4), Is.Empty, "reading at the log end returns nothing");
    }

    [Test]
    public void Null_and_empty_keys_values_and_headers_round_trip()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(
        [
            new Message(null, null),
            new Message(Array.Empty<byte>(), Array.Empty<byte>()),
            new Message(Bytes("k"), null) { Timestamp = 1234, Headers = [new RecordHeader("h1", null), new RecordHeader("h2", Bytes("v2"))] },
        ]);

        using LogReader reader = p.OpenReader(0);
        Assert.That(reader.TryRead(out Record r0), Is.True);
        Assert.That((r0.HasKey, r0.HasValue), Is.EqualTo((false, false)));
        Assert.That(reader.TryRead(out Record r1), Is.True);
        Assert.That((r1.HasKey, r1.Key.Length, r1.HasValue, r1.Value.Length), Is.EqualTo((true, 0, true, 0)));
        Assert.That(reader.TryRead(out Record r2), Is.True);
        Assert.That(r2.Timestamp, Is.EqualTo(1234));
        var headers = new List<string>();
        foreach (RecordHeaderView h in r2.Headers)
        {
            headers.Add($"{Text(h.Key)}={(h.HasValue ? Text(h.Value) : "null")}");
        }

        Assert.That(headers, Is.EqualTo(new[] { "h1=null", "h2=v2" }));
        Assert.That(reader.TryRead(out _), Is.False);
    }

    [Test]
    public void A_null_byte_array_is_a_null_key_or_value_not_an_empty_one()
    {
        // Regression: C# converts a null byte[] to an empty ReadOnlyMemory, which made null values empty.
        byte[]? nothing = null;
        var m = new Message(nothing, nothing);
        Assert.That((m.Key.HasValue, m.Value.HasValue), Is.EqualTo((false, false)));
        Assert.That(new Message(nothing).Value.HasValue, Is.False);
        Assert.That(new RecordHeader("h", nothing).Value.HasValue, Is.False);
        Assert.That(new Message(Array.Empty<byte>()).Value.HasValue, Is.True, "empty stays empty");
    }

    [Test]
    public void Reads_outside_the_log_are_out_of_range()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append([new Message(Bytes("0")), new Message(Bytes("1"))]);

        OffsetOutOfRangeException above = Assert.Throws<OffsetOutOfRangeException>(() => p.OpenReader(3))!;
        Assert.That((above.Offset, above.LogStartOffset, above.LogEndOffset), Is.EqualTo((3L, 0L, 2L)));
        Assert.Throws<OffsetOutOfRangeException>(() => p.OpenReader(-1));
    }

    [Test]
    public void A_reader_follows_a_growing_log()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 300 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        using LogReader reader = p.OpenReader(0);
        Assert.That(reader.TryRead(out _), Is.False);
        for (int i = 0; i < 20; i++)
        {
            p.Append(new Message(Bytes($"v{i}")));
            Assert.That(reader.TryRead(out Record r), Is.True, $"record {i}");
            Assert.That((r.Offset, Text(r.Value)), Is.EqualTo(((long)i, $"v{i}")));
            Assert.That(reader.TryRead(out _), Is.False);
        }

        Assert.That(p.SegmentCount, Is.GreaterThan(3), "the reader crossed segment rolls");
    }

    [Test]
    public void Oversized_and_empty_batches_are_rejected_and_nothing_is_written()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, MaxBatchBytes = 1000, SegmentBytes = 4096 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("ok")));
        Assert.Throws<ArgumentException>(() => p.Append(new Message(new byte[2000])));
        Assert.Throws<ArgumentException>(() => p.Append(ReadOnlySpan<Message>.Empty));
        Assert.That(p.LogEndOffset, Is.EqualTo(1));
        p.Append(new Message(Bytes("after")));
        Assert.That(ReadAll(p, 0), Is.EqualTo(new[] { "0:null:ok", "1:null:after" }));
    }

    [Test]
    public void Use_after_dispose_throws_ObjectDisposedException()
    {
        using var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        store.Dispose();
        Assert.Throws<ObjectDisposedException>(() => p.Append(new Message(Bytes("x"))));
        Assert.Throws<ObjectDisposedException>(() => store.GetPartition("t", 0));
        Assert.Throws<ObjectDisposedException>(() => store.CreateTopic("u"));
        Assert.DoesNotThrow(store.Dispose, "dispose twice is harmless");
    }

    [Test]
    public void Data_survives_a_clean_reopen_without_any_scan()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("t", 2);
            for (int i = 0; i < 50; i++)
            {
                store.GetPartition("t", i % 2).Append(new Message(Bytes($"k{i}"), Bytes($"v{i}")));
            }
        }

        using (LogStore store = LogStore.Open(dir.Path))
        {
            Assert.That(store.Recovery.CleanShutdown, Is.True);
            Assert.That(store.Recovery.ScannedSegments, Is.Zero);
            Assert.That(store.Recovery.RebuiltIndexes, Is.Zero);
            LogPartition p1 = store.GetPartition("t", 1);
            Assert.That(p1.LogEndOffset, Is.EqualTo(25));
            Assert.That(p1.HighWatermark, Is.EqualTo(25));
            Assert.That(ReadAll(p1, 24), Is.EqualTo(new[] { "24:k49:v49" }));
            Assert.That(p1.Append(new Message(Bytes("next"))).BaseOffset, Is.EqualTo(25));
        }

        Assert.That(File.Exists(Path.Combine(dir.Path, LogStore.CleanShutdownFileName)), Is.True);
    }

    [Test]
    public void Without_the_clean_marker_the_last_segment_of_each_partition_is_scanned()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { SegmentBytes = 500 }))
        {
            store.CreateTopic("t", 2);
            for (int i = 0; i < 40; i++)
            {
                store.GetPartition("t", i % 2).Append(new Message(Bytes($"value-{i}")));
            }
        }

        File.Delete(Path.Combine(dir.Path, LogStore.CleanShutdownFileName));
        using (LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { SegmentBytes = 500 }))
        {
            Assert.That(store.Recovery.CleanShutdown, Is.False);
            int partitions = store.ListTopics(includeInternal: true).Sum(t => t.Partitions);
            Assert.That(partitions, Is.EqualTo(4), "two of t, one each of the internal topics");
            Assert.That(store.Recovery.ScannedSegments, Is.EqualTo(partitions), "one (the last) segment per partition");
            Assert.That(store.GetPartition("t", 0).SegmentCount, Is.GreaterThan(1));
            Assert.That(ReadAll(store.GetPartition("t", 0), 0), Has.Count.EqualTo(20));
        }
    }

    [Test]
    public void Appender_packs_records_into_batches_with_dense_offsets()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(Bytes("first")));
        using (LogAppender appender = p.CreateAppender(batchBytes: 1024))
        {
            for (int i = 0; i < 1000; i++)
            {
                appender.Append(new Message(Bytes($"r{i}")));
            }

            Assert.That(p.LogEndOffset, Is.GreaterThan(1).And.LessThan(1001), "full batches were written, the last is pending");
            Assert.That(appender.PendingCount, Is.GreaterThan(0));
            appender.FlushAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
            Assert.That(appender.PendingCount, Is.Zero);
        }

        Assert.That(p.LogEndOffset, Is.EqualTo(1001));
        Assert.That(p.HighWatermark, Is.EqualTo(1001));
        long dataBytes = p.SizeInBytes;
        List<string> all = ReadAll(p, 0);
        Assert.That(all[0], Is.EqualTo("0:null:first"));
        for (int i = 0; i < 1000; i++)
        {
            Assert.That(all[i + 1], Is.EqualTo($"{i + 1}:null:r{i}"));
        }

        // Batches of ~1 KiB: one 61-byte header per batch, not per record (each record is ~9 bytes).
        Assert.That(dataBytes, Is.LessThan(1000 * 20));
    }

    [Test]
    public void Offset_for_timestamp_finds_the_first_record_at_or_after_it()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 400, IndexIntervalBytes = 100 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 100; i++)
        {
            // Timestamps 1000, 1010, ... with one out-of-order record at offset 50.
            long ts = i == 50 ? 500 : 1000 + (i * 10);
            p.Append(new Message(Bytes($"v{i}")) { Timestamp = ts });
        }

        Assert.That(p.SegmentCount, Is.GreaterThan(3));
        Assert.That(p.OffsetForTimestamp(0), Is.EqualTo(0));
        Assert.That(p.OffsetForTimestamp(1000), Is.EqualTo(0));
        Assert.That(p.OffsetForTimestamp(1001), Is.EqualTo(1));
        Assert.That(p.OffsetForTimestamp(1500), Is.EqualTo(51), "offset 50 has timestamp 500");
        Assert.That(p.OffsetForTimestamp(1490), Is.EqualTo(49));
        Assert.That(p.OffsetForTimestamp(1990), Is.EqualTo(99));
        Assert.That(p.OffsetForTimestamp(1991), Is.Null);
    }
}
