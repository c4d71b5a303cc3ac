using TxLog.Durability;
using TxLog.Records;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Storage;

/// <summary>
/// A <see cref="LogAppender"/> whose topic is deleted after it wrote its records, with nothing pending:
/// <see cref="LogAppender.FlushAsync"/> had no batch to write, went straight to the durability wait on the
/// deleted partition's closed log and threw its <see cref="ObjectDisposedException"/>, where every other
/// write path of the library reports the deleted topic as <see cref="TopicNotFoundException"/>.
/// </summary>
public sealed class AppenderAfterTopicDeletionTests
{
    [Test]
    public void FlushAsync_after_the_topic_was_deleted_fails_as_an_unknown_topic([Values] DurabilityMode mode, [Values] bool flushedBefore)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = mode, FlushInterval = TimeSpan.FromHours(1), PreallocateBytes = 0 });
        store.CreateTopic("t");
        using LogAppender appender = store.GetPartition("t", 0).CreateAppender();
        appender.Append(new Message(Bytes("r0")));
        if (flushedBefore)
        {
            appender.FlushAsync().AsTask().GetAwaiter().GetResult(); // durable before the deletion: gone with it all the same
        }
        else
        {
            appender.Flush(); // written, not durable
        }

        store.DeleteTopic("t");

        Assert.That(appender.PendingCount, Is.Zero, "precondition: nothing left to write, only the durability wait");
        TopicNotFoundException e = Assert.ThrowsAsync<TopicNotFoundException>(async () => await appender.FlushAsync())!;
        Assert.That(e.Topic, Is.EqualTo("t"));
    }

    [Test]
    public void FlushAsync_of_an_appender_that_wrote_nothing_before_the_deletion_has_nothing_to_wait_for()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
        store.CreateTopic("t");
        using LogAppender appender = store.GetPartition("t", 0).CreateAppender();
        store.DeleteTopic("t");

        Assert.That(appender.FlushAsync().IsCompletedSuccessfully, Is.True, "no record of this appender was lost");
    }
}
