using TxLog.Consuming;
using TxLog.Records;
using TxLog.Tests.Diagnostics;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Storage;

/// <summary>
/// Retention deletes the segment a reader or a consumer is about to read. A <see cref="LogReader"/> throws
/// <see cref="OffsetOutOfRangeException"/> (a regression found by a bug hunt: it threw ObjectDisposedException).
/// A <see cref="Consumer"/> follows <see cref="AutoOffsetReset"/>, as Kafka's consumer does on an
/// out-of-range fetch: Earliest goes on at the log start, Latest at the end, Error throws.
/// </summary>
public sealed class RetentionUnderReaderTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    private const int ConsumerResetEvent = 7001;

    // Segments larger than the reader's 1 MiB buffer, so a reader is in the middle of a segment file
    // when retention deletes it.
    private static (LogStore Store, LogPartition Partition) OpenWithBigSegments(TempDirectory dir, ListLoggerFactory? logs = null)
    {
        LogStoreOptions options = Options();
        options.SegmentBytes = 1_300_000;
        options.RetentionBytes = 1;
        options.RetentionCheckInterval = TimeSpan.FromHours(1); // the tests run retention themselves
        options.LoggerFactory = logs;
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        byte[] big = new byte[60_000];
        for (int i = 0; i < 60; i++)
        {
            p.Append(new Message(big));
        }

        Assert.That(p.SegmentCount, Is.GreaterThanOrEqualTo(3), "precondition");
        return (store, p);
    }

    // A read-uncommitted consumer that has read offset 0 (position 1, inside the first segment). It starts
    // at its group's committed offset 0: with Error and no committed offset, Assign throws.
    private static async Task<Consumer> ConsumerAtOffsetOneAsync(LogStore store, AutoOffsetReset reset)
    {
        Consumer consumer = store.CreateConsumer(new ConsumerOptions { GroupId = "g", Isolation = IsolationLevel.ReadUncommitted, AutoOffsetReset = reset });
        await consumer.Commit([new TopicPartitionOffset(T0, 0)]);
        consumer.Assign(T0);
        Assert.That(consumer.Consume()!.Offset, Is.Zero);
        return consumer;
    }

    private static long DeleteAllButTheActiveSegment(LogStore store, LogPartition p)
    {
        Assert.That(store.EnforceRetention(), Is.GreaterThan(0), "precondition");
        Assert.That(p.LogStartOffset, Is.GreaterThan(1), "precondition: the consumer's position is deleted");
        return p.LogStartOffset;
    }

    private static List<long> Drain(Consumer consumer)
    {
        var offsets = new List<long>();
        while (consumer.Consume() is { } r)
        {
            offsets.Add(r.Offset);
        }

        return offsets;
    }

    private static List<long> Range(long from, long to)
    {
        var list = new List<long>();
        for (long o = from; o < to; o++)
        {
            list.Add(o);
        }

        return list;
    }

    [Test]
    public void A_reader_inside_a_deleted_segment_gets_OffsetOutOfRangeException()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p) = OpenWithBigSegments(dir);
        using (store)
        {
            using LogReader reader = p.OpenReader(0);
            Assert.That(reader.TryRead(out _), Is.True);

            DeleteAllButTheActiveSegment(store, p);

            OffsetOutOfRangeException? e = Assert.Throws<OffsetOutOfRangeException>(() =>
            {
                while (reader.TryRead(out _))
                {
                }
            });
            Assert.That(e!.Offset, Is.EqualTo(1));
        }
    }

    [Test]
    public async Task Earliest_goes_on_at_the_log_start_and_skips_only_deleted_records()
    {
        using var dir = new TempDirectory();
        var logs = new ListLoggerFactory();
        (LogStore store, LogPartition p) = OpenWithBigSegments(dir, logs);
        using (store)
        {
            using Consumer consumer = await ConsumerAtOffsetOneAsync(store, AutoOffsetReset.Earliest);

            long start = DeleteAllButTheActiveSegment(store, p);

            Assert.That(Drain(consumer), Is.EqualTo(Range(start, p.HighWatermark)), "every record still in the log, from the log start, once");
            Assert.That(consumer.Position(T0), Is.EqualTo(p.HighWatermark));
            Logged reset = logs.WithId(ConsumerResetEvent).Single();
            Assert.That(reset.Level, Is.EqualTo(Microsoft.Extensions.Logging.LogLevel.Warning));
            Assert.That(reset.Fields["Partition"], Is.EqualTo("t-0"));
            Assert.That(reset.Fields["Offset"], Is.EqualTo(1L));
            Assert.That(reset.Fields["LogStartOffset"], Is.EqualTo(start));
            Assert.That(reset.Fields["NewOffset"], Is.EqualTo(start));
            Assert.That(reset.Fields["Policy"], Is.EqualTo("Earliest"));
        }
    }

    [Test]
    public async Task Latest_goes_on_at_the_high_watermark()
    {
        using var dir = new TempDirectory();
        var logs = new ListLoggerFactory();
        (LogStore store, LogPartition p) = OpenWithBigSegments(dir, logs);
        using (store)
        {
            using Consumer consumer = await ConsumerAtOffsetOneAsync(store, AutoOffsetReset.Latest);

            DeleteAllButTheActiveSegment(store, p);

            long end = p.HighWatermark;
            Assert.That(consumer.Consume(), Is.Null, "at the end: nothing to read");
            Assert.That(consumer.Position(T0), Is.EqualTo(end));
            p.Append(Msg("next"));
            Assert.That(Drain(consumer), Is.EqualTo(new[] { end }), "reads on from the end");
            Assert.That(logs.WithId(ConsumerResetEvent).Single().Fields["NewOffset"], Is.EqualTo(end));
        }
    }

    [Test]
    public async Task Error_throws_naming_the_partition_and_the_position_until_the_consumer_seeks()
    {
        using var dir = new TempDirectory();
        var logs = new ListLoggerFactory();
        (LogStore store, LogPartition p) = OpenWithBigSegments(dir, logs);
        using (store)
        {
            using Consumer consumer = await ConsumerAtOffsetOneAsync(store, AutoOffsetReset.Error);

            long start = DeleteAllButTheActiveSegment(store, p);

            for (int attempt = 0; attempt < 2; attempt++)
            {
                OffsetOutOfRangeException? e = Assert.Throws<OffsetOutOfRangeException>(() => Drain(consumer), "records were lost: Error must not skip them");
                Assert.That(e!.Offset, Is.EqualTo(1), "names the position");
                Assert.That(e.LogStartOffset, Is.EqualTo(start));
                Assert.That(e.Message, Does.Contain("partition t-0"));
                Assert.That(e.Partition, Is.EqualTo(T0), "the partition as a property, not only in the message");
                Assert.That(consumer.Position(T0), Is.EqualTo(1), "the position stays, so every call throws until the caller seeks");
            }

            Assert.That(logs.WithId(ConsumerResetEvent), Is.Empty, "nothing was reset");
            consumer.SeekToBeginning(T0);
            Assert.That(Drain(consumer), Is.EqualTo(Range(start, p.HighWatermark)));
        }
    }
}
