using TxLog.Consuming;
using TxLog.Producers;
using TxLog.Records;

namespace TxLog.Tests.Storage;

/// <summary>
/// Regression (found by a bug hunt): a record with a negative timestamp was accepted. The batch's max
/// timestamp then stayed -1 (the builder's "none yet"), so the header disagreed with its records, and
/// time retention, which ignores segments without a timestamp, never deleted the segment. Kafka's
/// producer refuses a negative timestamp (ProducerRecord); here "no timestamp" is null (the store's
/// clock), so every negative value is refused, before anything is written.
/// </summary>
public sealed class NegativeTimestampTests
{
    [TestCase(-1L)]
    [TestCase(-1000L)]
    [TestCase(long.MinValue)]
    public async Task A_negative_timestamp_is_refused_before_anything_is_written(long timestamp)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = Durability.DurabilityMode.None });
        store.CreateTopic("t");
        var tp = new TopicPartition("t", 0);
        LogPartition p = store.GetPartition("t", 0);

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => p.Append(new Message(TestRecords.Bytes("v")) { Timestamp = timestamp }), "LogPartition.Append");
        Assert.That(e!.ParamName, Is.EqualTo(nameof(Message.Timestamp)));
        Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await p.AppendAsync(new Message(TestRecords.Bytes("v")) { Timestamp = timestamp }), "LogPartition.AppendAsync");

        using (LogAppender appender = p.CreateAppender())
        {
            Assert.Throws<ArgumentOutOfRangeException>(() => appender.Append(new Message(TestRecords.Bytes("v")) { Timestamp = timestamp }), "LogAppender.Append");
            Assert.That(appender.Flush(), Is.Null, "nothing pending in the appender");
        }

        await using (Producer producer = await store.CreateProducerAsync())
        {
            Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await producer.ProduceAsync(tp, new Message(TestRecords.Bytes("v")) { Timestamp = timestamp }), "Producer.ProduceAsync");
        }

        Assert.That(p.LogEndOffset, Is.Zero, "nothing was written");

        // No timestamp (null) is still the store's clock, and 0 (the epoch) is a timestamp.
        long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        p.Append(new Message(TestRecords.Bytes("now")));
        p.Append(new Message(TestRecords.Bytes("epoch")) { Timestamp = 0 });
        var timestamps = new List<long>();
        using (LogReader reader = p.OpenReader(0, IsolationLevel.ReadUncommitted))
        {
            while (reader.TryRead(out Record record))
            {
                timestamps.Add(record.Timestamp);
            }
        }

        Assert.That(timestamps, Has.Count.EqualTo(2));
        Assert.That(timestamps[0], Is.GreaterThanOrEqualTo(before));
        Assert.That(timestamps[1], Is.Zero);
    }
    [Test]
    public async Task A_store_clock_before_1970_writes_no_negative_timestamp()
    {
        // Null is "now by the store's clock": a clock before the Unix epoch (a TimeProvider the caller
        // sets) gave every record without a timestamp a negative one, through every path, with the same
        // header that disagrees with its records as an explicit negative timestamp.
        using var dir = new TempDirectory();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch - TimeSpan.FromDays(1));
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = Durability.DurabilityMode.None, TimeProvider = clock });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(TestRecords.Bytes("append")));
        using (LogAppender appender = p.CreateAppender())
        {
            appender.Append(new Message(TestRecords.Bytes("appender")));
            appender.Flush();
        }

        await using (Producer producer = await store.CreateProducerAsync())
        {
            await producer.ProduceAsync(new TopicPartition("t", 0), new Message(TestRecords.Bytes("produce")));
        }

        var timestamps = new List<long>();
        using (LogReader reader = p.OpenReader(0, IsolationLevel.ReadUncommitted))
        {
            while (reader.TryRead(out Record record))
            {
                timestamps.Add(record.Timestamp);
            }
        }

        Assert.That(timestamps, Has.Count.EqualTo(3));
        Assert.That(timestamps, Has.All.GreaterThanOrEqualTo(0L), "no record timestamp before the epoch");
    }
}
