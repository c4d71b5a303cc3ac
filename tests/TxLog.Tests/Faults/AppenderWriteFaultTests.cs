using TxLog.Durability;
using TxLog.Records;
using TxLog.Tests.Recovery;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Faults;

/// <summary>
/// A <see cref="LogAppender"/> accepts records into a buffer and writes them in batches. When a batch
/// write failed, the records it had accepted were dropped and the caller only saw the partition's
/// <see cref="LogWriteException"/>, without learning which of its records were lost; the appender then
/// went on accepting records as if nothing had happened (the partition refused them at the next write).
/// Now the failure names the records that were not written, and the appender stays faulted.
/// </summary>
[TestFixture]
public sealed class AppenderWriteFaultTests : FaultFixture
{
    // Values of 200 bytes and batches of 1000: four records fit a batch, and a fifth makes Append write it.
    private const int BatchBytes = 1000;
    private const int PerBatch = 4;

    private static Message Record(int i) => new(Bytes($"r{i:D3}-" + new string('v', 195)));

    public enum Trigger
    {
        Flush,
        FlushAsync,
        AppendThatOverflows,
    }

    [Test]
    public void A_failed_batch_write_names_the_records_not_written_and_faults_the_appender([Values] Trigger trigger, [Values(0, 30)] int partialBytes)
    {
        const int Written = 3;
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs, DurabilityMode.None, preallocate: false)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            using LogAppender appender = partition.CreateAppender(BatchBytes);
            for (int i = 0; i < Written; i++)
            {
                appender.Append(Record(i));
            }

            Assert.That(appender.Flush()!.Value.LastOffset, Is.EqualTo(Written - 1));
            for (int i = Written; i < Written + PerBatch; i++)
            {
                appender.Append(Record(i));
            }

            Assert.That(appender.PendingCount, Is.EqualTo(PerBatch), "precondition: a full batch is pending, not written");
            Fs.FailWrite(partialBytes: partialBytes);
            TestDelegate fail = trigger switch
            {
                Trigger.Flush => () => appender.Flush(),
                Trigger.FlushAsync => () => appender.FlushAsync().AsTask().GetAwaiter().GetResult(),
                _ => () => appender.Append(Record(Written + PerBatch)),
            };

            LogAppenderFaultedException e = Assert.Throws<LogAppenderFaultedException>(fail)!;
            Assert.That(Fs.Faults, Is.EqualTo(1), "precondition: the injected write failure happened");
            AssertNames(e);
            Assert.That(e.InnerException, Is.InstanceOf<LogWriteException>());
            Assert.That(e.InnerException!.InnerException, Is.InstanceOf<IOException>().With.Message.Contains(FaultyFileSystem.InjectedMessage));
            Assert.That(e.Message, Does.Contain($"from record {Written} on"));
            Assert.That(appender.PendingCount, Is.Zero, "the appender holds nothing it could still write");

            // Faulted: every later call reports the same loss, and none reaches the partition.
            AssertNames(Assert.Throws<LogAppenderFaultedException>(() => appender.Append(Record(99)))!);
            AssertNames(Assert.Throws<LogAppenderFaultedException>(() => appender.Flush())!);
            AssertNames(Assert.ThrowsAsync<LogAppenderFaultedException>(async () => await appender.FlushAsync())!);
            Assert.That(Fs.Faults, Is.EqualTo(1));
            Assert.That(partition.LogEndOffset, Is.EqualTo(Written));
        }

        // What the report says is what the log holds: records 0 to 2, nothing of the failed batch.
        using LogStore reopened = LogStore.Open(Dir.Path, Options());
        List<string> values = ReadAll(reopened.GetPartition(Topic, 0));
        Assert.That(values, Has.Count.EqualTo(Written));
        for (int i = 0; i < Written; i++)
        {
            Assert.That(values[i], Does.StartWith($"{i}@").And.Contain("v=" + Convert.ToHexString(Bytes($"r{i:D3}-"))));
        }

        static void AssertNames(LogAppenderFaultedException e)
        {
            Assert.That((e.FirstUnwrittenRecord, e.UnwrittenRecords, e.LastWrittenOffset), Is.EqualTo((Written, PerBatch, Written - 1L)));
            Assert.That(e.Partition, Is.EqualTo(new TopicPartition(Topic, 0)));
        }
    }

    [Test]
    public void A_failed_first_batch_reports_every_record_and_no_written_offset()
    {
        using LogStore store = LogStore.Open(Dir.Path, Options(Fs, DurabilityMode.None, preallocate: false));
        store.CreateTopic(Topic);
        using LogAppender appender = store.GetPartition(Topic, 0).CreateAppender(BatchBytes);
        appender.Append(Record(0));
        appender.Append(Record(1));
        Fs.FailWrite();
        LogAppenderFaultedException e = Assert.Throws<LogAppenderFaultedException>(() => appender.Flush())!;
        Assert.That((e.FirstUnwrittenRecord, e.UnwrittenRecords, e.LastWrittenOffset), Is.EqualTo((0L, 2, -1L)));
        Assert.That(e.Message, Does.Contain("wrote no record"));
    }

    [Test]
    public void Records_pending_when_the_topic_is_deleted_are_reported_not_dropped()
    {
        using LogStore store = LogStore.Open(Dir.Path, Options(Fs, DurabilityMode.None, preallocate: false));
        store.CreateTopic(Topic);
        using LogAppender appender = store.GetPartition(Topic, 0).CreateAppender(BatchBytes);
        appender.Append(Record(0));
        appender.Flush();
        appender.Append(Record(1));
        appender.Append(Record(2));
        store.DeleteTopic(Topic);

        LogAppenderFaultedException e = Assert.Throws<LogAppenderFaultedException>(() => appender.Flush())!;
        Assert.That((e.FirstUnwrittenRecord, e.UnwrittenRecords, e.LastWrittenOffset), Is.EqualTo((1L, 2, 0L)));
        Assert.That(e.InnerException, Is.InstanceOf<TopicNotFoundException>());
        Assert.Throws<LogAppenderFaultedException>(() => appender.Append(Record(3)));
    }
    [Test]
    public void After_an_io_error_the_report_says_the_records_before_are_only_sure_to_survive_as_far_as_they_were_made_durable()
    {
        // "Append again from record N after reopening" is only right when records 0..N-1 are still in the
        // reopened partition; those not fsynced may be cut by recovery. The partition's log end offset
        // after the reopen tells (durable data is a prefix of the log).
        using LogStore store = LogStore.Open(Dir.Path, Options(Fs, DurabilityMode.None, preallocate: false));
        store.CreateTopic(Topic);
        using LogAppender appender = store.GetPartition(Topic, 0).CreateAppender(BatchBytes);
        appender.Append(Record(0));
        appender.Append(Record(1));
        appender.Flush();
        appender.Append(Record(2));
        Fs.FailWrite();

        LogAppenderFaultedException e = Assert.Throws<LogAppenderFaultedException>(() => appender.Flush())!;
        Assert.That(e.InnerException, Is.InstanceOf<LogWriteException>(), "precondition: an I/O error");
        Assert.That(e.Message, Does.Contain("FlushAsync"), "names what makes the records before durable");
        Assert.That(e.Message, Does.Contain("log end offset is above 1"), "says how to check after the reopen that records 0 and 1 survived");
        Assert.That(e.Message, Does.Contain("from record 2"));
    }

    [Test]
    public void After_the_topic_was_deleted_the_report_does_not_advise_appending_again_from_the_first_unwritten_record()
    {
        // The records written before went with the topic: appending "again from record 1" (to a topic created
        // again) would lose record 0, and no reopen is needed or helps.
        using LogStore store = LogStore.Open(Dir.Path, Options(Fs, DurabilityMode.None, preallocate: false));
        store.CreateTopic(Topic);
        using LogAppender appender = store.GetPartition(Topic, 0).CreateAppender(BatchBytes);
        appender.Append(Record(0));
        appender.Flush();
        appender.Append(Record(1));
        store.DeleteTopic(Topic);

        LogAppenderFaultedException e = Assert.Throws<LogAppenderFaultedException>(() => appender.Flush())!;
        Assert.That(e.InnerException, Is.InstanceOf<TopicNotFoundException>(), "precondition: the topic was deleted");
        Assert.That(e.Message, Does.Not.Contain("again from record 1").And.Not.Contain("reopen"));
        Assert.That(e.Message, Does.Contain("went with the deleted topic"));
    }
}
