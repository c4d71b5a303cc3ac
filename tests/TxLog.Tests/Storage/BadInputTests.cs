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

    // Longer than the timers and Task.Delay take (uint.MaxValue - 1 ms), shorter than TimeSpan.MaxValue.
    private static readonly TimeSpan SixtyDays = TimeSpan.FromDays(60);

    [TestCase(nameof(LogStoreOptions.FlushInterval), Durability.DurabilityMode.Periodic)]
    [TestCase(nameof(LogStoreOptions.RetentionCheckInterval), Durability.DurabilityMode.GroupCommit)]
    [TestCase(nameof(LogStoreOptions.TransactionTimeoutCheckInterval), Durability.DurabilityMode.GroupCommit)]
    public void Intervals_longer_than_a_timer_can_wait_are_rejected_at_open_before_anything_is_written(string option, Durability.DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        var options = new LogStoreOptions { Durability = mode };
        typeof(LogStoreOptions).GetProperty(option)!.SetValue(options, SixtyDays);

        // Before the fix: the background loop's Task.Delay threw (no periodic fsync, no retention, and
        // every close failed with a TimeoutException and left the store unclean), or the coordinator's
        // timer failed the open after recovery had already written.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() =>
        {
            LogStore store = LogStore.Open(dir.Path, options);
            store.CreateTopic("t");
            store.GetPartition("t", 0).Append(new Message(TestRecords.Bytes("v")));
            Thread.Sleep(100);
            store.Dispose();
        });
        Assert.That(e!.ParamName, Is.EqualTo(option));
        Assert.That(Directory.Exists(dir.Path) ? Directory.GetFileSystemEntries(dir.Path) : [], Is.Empty);
    }
}
