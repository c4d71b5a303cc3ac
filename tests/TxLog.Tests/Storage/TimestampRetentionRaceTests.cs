using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

/// <summary>Runs an action (once) on the first read of a file whose name ends with a suffix.</summary>
internal sealed class ReadHookFileSystem : DelegatingFileSystem
{
    private string? _suffix;
    private Action? _action;

    public void OnNextRead(string suffix, Action action)
    {
        _suffix = suffix;
        _action = action;
    }

    protected override IStorageFile WrapFile(string path, IStorageFile file) => new File(this, file);

    private sealed class File(ReadHookFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override int Read(long position, Span<byte> buffer)
        {
            if (owner._suffix is { } suffix && Path.EndsWith(suffix, StringComparison.Ordinal))
            {
                Action action = owner._action!;
                owner._suffix = null;
                owner._action = null;
                action();
            }

            return Inner.Read(position, buffer);
        }
    }
}

public sealed class TimestampRetentionRaceTests
{
    private static readonly long Base = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 3_600_000;

    private static (LogStore Store, LogPartition Partition, ReadHookFileSystem Fs) Open(TempDirectory dir)
    {
        var fs = new ReadHookFileSystem();
        var options = new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 1000,
            IndexIntervalBytes = 100,
            RetentionBytes = 1,
            RetentionCheckInterval = TimeSpan.FromHours(1),
            FileSystem = fs,
        };
        LogStore store = LogStore.Open(dir.Path, options);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        for (int i = 0; i < 60; i++)
        {
            p.Append(new Message(new byte[100]) { Timestamp = Base + i });
        }

        Assert.That(p.SegmentCount, Is.GreaterThanOrEqualTo(3), "precondition");
        return (store, p, fs);
    }

    // Retention deletes the segment a timestamp lookup is reading: the lookup must give an answer from
    // what is left (or the documented OffsetOutOfRangeException), not an ObjectDisposedException.
    [Test]
    public void A_timestamp_lookup_racing_retention_does_not_throw_ObjectDisposedException()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, ReadHookFileSystem fs) = Open(dir);
        using (store)
        {
            string first = LogSegment.FileName(0, ".log");
            fs.OnNextRead(first, () => Assert.That(store.EnforceRetention(), Is.GreaterThan(0)));
            long? found = null;
            try
            {
                found = p.OffsetForTimestamp(Base);
            }
            catch (OffsetOutOfRangeException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"unexpected {e.GetType().Name}: {e.Message}");
            }

            Assert.That(p.LogStartOffset, Is.GreaterThan(0), "precondition: the first segment was deleted during the lookup");
            if (found is { } offset)
            {
                Assert.That(offset, Is.GreaterThanOrEqualTo(p.LogStartOffset));
            }
        }
    }

    [Test]
    public void SeekToTimestamp_racing_retention_does_not_throw_ObjectDisposedException()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, ReadHookFileSystem fs) = Open(dir);
        using (store)
        {
            var tp = new TopicPartition("t", 0);
            using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadUncommitted });
            consumer.Assign(tp);
            string first = LogSegment.FileName(0, ".log");
            fs.OnNextRead(first, () => store.EnforceRetention());
            try
            {
                consumer.SeekToTimestamp(tp, Base + 1);
            }
            catch (OffsetOutOfRangeException)
            {
            }
            catch (Exception e)
            {
                Assert.Fail($"unexpected {e.GetType().Name}: {e.Message}");
            }

            Assert.That(consumer.Position(tp), Is.GreaterThanOrEqualTo(p.LogStartOffset));
        }
    }

    // Sanity (expected to pass): a reader opened in a segment that retention deletes while the reader
    // looks up its position gets OffsetOutOfRangeException, never skipped records.
    [Test]
    public void A_reader_whose_segment_is_deleted_during_its_open_fails_with_OffsetOutOfRange()
    {
        using var dir = new TempDirectory();
        (LogStore store, LogPartition p, ReadHookFileSystem fs) = Open(dir);
        using (store)
        {
            string first = LogSegment.FileName(0, ".log");
            fs.OnNextRead(first, () => store.EnforceRetention());
            Assert.That(p.Log.Segments[1].BaseOffset, Is.GreaterThan(2), "precondition");
            using LogReader reader = p.OpenReader(2);
            Assert.That(() => reader.TryRead(out _), Throws.InstanceOf<OffsetOutOfRangeException>());
        }
    }
}
