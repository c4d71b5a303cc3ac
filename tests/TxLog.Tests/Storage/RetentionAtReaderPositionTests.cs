using TxLog.Consuming;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

/// <summary>
/// Regression (found by a bug hunt): a reader opened at the log end had looked its position up in the
/// active segment without reading it. When that segment rolled and retention deleted it, the reader's
/// position was the new log start (nothing it had to return was lost), yet its next read touched the
/// deleted segment's closed file and threw ObjectDisposedException.
/// </summary>
public sealed class RetentionAtReaderPositionTests
{
    private static LogStoreOptions Options() => new()
    {
        Durability = Durability.DurabilityMode.None,
        SegmentBytes = 1000,
        RetentionBytes = 1,
        RetentionCheckInterval = TimeSpan.FromHours(1), // the test runs retention itself
    };

    private static void FillFirstSegment(LogPartition p)
    {
        for (int i = 0; i < 5; i++)
        {
            p.Append(new Message(new byte[100]));
        }

        Assert.That(p.SegmentCount, Is.EqualTo(1), "precondition: one segment");
    }

    // Appends a record that does not fit in the first segment (so the log rolls at `position`), then
    // runs retention: the segment the reader was positioned in is gone and the log start is the
    // reader's position.
    private static void RollAndDeleteFirstSegment(LogStore store, LogPartition p, long position)
    {
        byte[] value = new byte[300];
        Bytes("after").CopyTo(value, 0);
        p.Append(new Message(value));
        Assert.That(p.SegmentCount, Is.EqualTo(2), "precondition: the log rolled");
        Assert.That(store.EnforceRetention(), Is.EqualTo(1), "precondition: the first segment is deleted");
        Assert.That(p.LogStartOffset, Is.EqualTo(position), "precondition: the reader's position is the new log start");
    }

    [Test]
    public void A_reader_at_the_log_end_reads_on_after_its_segment_rolls_and_is_deleted()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        FillFirstSegment(p);
        long end = p.LogEndOffset;
        using LogReader reader = p.OpenReader(end);
        Assert.That(reader.TryRead(out _), Is.False, "caught up");

        RollAndDeleteFirstSegment(store, p, end);

        Assert.That(reader.TryRead(out Record r), Is.True);
        Assert.That(r.Offset, Is.EqualTo(end));
        Assert.That(Text(r.Value[..5]), Is.EqualTo("after"));
    }

    [Test]
    public void A_consumer_at_the_end_reads_on_after_its_segment_rolls_and_is_deleted()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        LogPartition p = store.GetPartition("t", 0);
        FillFirstSegment(p);
        long end = p.LogEndOffset;
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = AutoOffsetReset.Latest });
        consumer.Assign(tp);
        Assert.That(consumer.Position(tp), Is.EqualTo(end), "precondition");
        Assert.That(consumer.Consume(), Is.Null, "caught up");

        RollAndDeleteFirstSegment(store, p, end);

        ConsumeResult? next = consumer.Consume();
        Assert.That(next, Is.Not.Null);
        Assert.That(next!.Offset, Is.EqualTo(end));
    }
}
