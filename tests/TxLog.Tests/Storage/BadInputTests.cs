using TxLog.Records;

namespace TxLog.Tests.Storage;

public class BadInputTests
{
    [TestCase(1L)]
    [TestCase(long.MaxValue)]
    public void WaitForDurable_beyond_the_log_end_throws_instead_of_spinning_for_ever(long beyondEnd)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        p.Append(new Message(TestRecords.Bytes("v"))); // offset 0; the log end is 1

        // Before the fix the caller became the group-commit leader and fsynced in a loop for ever,
        // waiting for an offset that was never written.
        Task wait = Task.Run(async () => await p.WaitForDurableAsync(beyondEnd));
        Assert.That(Task.WaitAny([wait], TimeSpan.FromSeconds(10)), Is.Zero, "WaitForDurableAsync did not return");
        var e = Assert.Throws<AggregateException>(() => wait.Wait())!.InnerException as ArgumentOutOfRangeException;
        Assert.That(e, Is.Not.Null);
        Assert.That(e!.ParamName, Is.EqualTo("offset"));
        Assert.DoesNotThrowAsync(async () => await p.WaitForDurableAsync(0));
    }
}
