using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Tests.Storage;

/// <summary>The steady-state append path must not allocate per record (measured, not timed).</summary>
public class AllocationTests
{
    [Test]
    public void Appender_allocates_nothing_per_record_in_steady_state()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        byte[] payload = new byte[100];
        using LogAppender appender = p.CreateAppender();
        var message = new Message(payload);
        for (int i = 0; i < 50_000; i++)
        {
            appender.Append(in message); // warm up: pools, index arrays
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
        {
            appender.Append(in message);
        }

        long perRecord = (GC.GetAllocatedBytesForCurrentThread() - before) / 100_000;
        Assert.That(perRecord, Is.Zero);
    }

    [Test]
    public void Single_record_append_allocates_nothing_per_call_in_steady_state()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        var message = new Message(new byte[100]);
        for (int i = 0; i < 20_000; i++)
        {
            p.Append(in message);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20_000; i++)
        {
            p.Append(in message);
        }

        // Index arrays may double once in the window; anything per call would be >= 20,000 bytes.
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.LessThan(20_000));
    }
}
