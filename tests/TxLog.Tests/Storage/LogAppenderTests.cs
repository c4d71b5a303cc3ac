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
}
