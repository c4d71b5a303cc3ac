using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

public class LogAppenderTests
{
    [Test]
    public void Appender_with_headers_never_builds_a_batch_over_the_maximum_and_loses_nothing()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, MaxBatchBytes = 4096 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        RecordHeader[] headers = [new RecordHeader("trace", new byte[500])];
        using (LogAppender appender = p.CreateAppender(batchBytes: 4096))
        {
            for (int i = 0; i < 20; i++)
            {
                appender.Append(new Message(Bytes($"r{i}")) { Headers = headers });
            }

            appender.Flush();
        }

        List<string> all = ReadAll(p, 0);
        Assert.That(all, Has.Count.EqualTo(20), "every appended record is written");
        Assert.That(all[19], Is.EqualTo("19:null:r19"));
    }

    [Test]
    public void A_record_too_large_for_any_batch_is_refused_by_its_own_append_and_costs_no_other_record()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None, MaxBatchBytes = 4096 });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        using (LogAppender appender = p.CreateAppender(batchBytes: 4096))
        {
            appender.Append(new Message(Bytes("r0")));
            Assert.Throws<ArgumentException>(() => appender.Append(new Message(new byte[5000])), "the oversized record itself is refused");
            appender.Append(new Message(Bytes("r1")));
            appender.Flush();
        }

        Assert.That(ReadAll(p, 0), Is.EqualTo(new[] { "0:null:r0", "1:null:r1" }));
    }
}
