using TxLog.Durability;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;

namespace TxLog.Tests.Unified;

/// <summary>A <see cref="ConsistentCut"/> is only meaningful for the partitions it was captured from.</summary>
[TestFixture]
public class ConsistentCutMisuseTests
{
    private static readonly TopicPartition T0 = new("t", 0);
    private static readonly TopicPartition T1 = new("t", 1);

    private static LogStore OpenWith(TempDirectory dir, params string[] values)
    {
        LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None }); // readers see appends at once
        store.CreateTopic("t", 2);
        foreach (string v in values)
        {
            store.GetPartition("t", 0).Append(new Message(Bytes(v)));
        }

        return store;
    }

    [Test]
    public void A_cut_of_one_store_is_refused_by_a_partition_of_another()
    {
        // Same topic, different stores: the offsets of one say nothing about the other. The reader
        // used them anyway and stopped at an unrelated offset (here it showed none of "b"'s three records).
        using var dirA = new TempDirectory();
        using var dirB = new TempDirectory();
        using LogStore a = OpenWith(dirA);
        using LogStore b = OpenWith(dirB, "b1", "b2", "b3");
        ConsistentCut cutOfA = a.CaptureCut(T0);

        LogPartition partitionOfB = b.GetPartition("t", 0);
        ArgumentException? e = Assert.Throws<ArgumentException>(() => partitionOfB.OpenReader(0, cutOfA).Dispose());
        Assert.That(e!.ParamName, Is.EqualTo("cut"));
        Assert.That(e.Message, Does.Contain("another store"));

        // Its own cut works.
        using LogReader reader = partitionOfB.OpenReader(0, b.CaptureCut(T0));
        int read = 0;
        while (reader.TryRead(out Record _))
        {
            read++;
        }

        Assert.That(read, Is.EqualTo(3));
    }

    [Test]
    public void A_cut_taken_before_the_store_was_reopened_is_refused()
    {
        using var dir = new TempDirectory();
        ConsistentCut old;
        using (LogStore first = OpenWith(dir, "x"))
        {
            old = first.CaptureCut(T0);
        }

        using LogStore reopened = LogStore.Open(dir.Path);
        ArgumentException? e = Assert.Throws<ArgumentException>(() => reopened.GetPartition("t", 0).OpenReader(0, old).Dispose());
        Assert.That(e!.ParamName, Is.EqualTo("cut"));
    }

    [Test]
    public void A_cut_is_refused_by_a_partition_it_does_not_contain()
    {
        using var dir = new TempDirectory();
        using LogStore store = OpenWith(dir, "x");
        ConsistentCut cut = store.CaptureCut(T0);
        ArgumentException? e = Assert.Throws<ArgumentException>(() => store.GetPartition("t", 1).OpenReader(0, cut).Dispose());
        Assert.That(e!.ParamName, Is.EqualTo("cut"));
        Assert.That(e.Message, Does.Contain("t-1").Or.Contain(T1.ToString()));
    }

    [Test]
    public void A_cut_of_a_deleted_topic_is_refused_by_the_topic_created_again_under_its_name()
    {
        // Same store, same name, same partition number: but the offsets belong to the deleted log.
        using var dir = new TempDirectory();
        using LogStore store = OpenWith(dir, "old1", "old2");
        ConsistentCut cut = store.CaptureCut(T0);
        store.DeleteTopic("t");
        store.CreateTopic("t", 2);
        store.GetPartition("t", 0).Append(new Message(Bytes("new")));

        ArgumentException? e = Assert.Throws<ArgumentException>(() => store.GetPartition("t", 0).OpenReader(0, cut).Dispose());
        Assert.That(e!.ParamName, Is.EqualTo("cut"));
    }

    [Test]
    public void A_cut_cannot_be_used_once_its_store_is_closed()
    {
        using var dir = new TempDirectory();
        LogStore store = OpenWith(dir, "x");
        ConsistentCut cut = store.CaptureCut(T0);
        Assert.That(cut.EndOffset(T0), Is.EqualTo(1));
        LogPartition partition = store.GetPartition("t", 0);
        store.Dispose();

        Assert.Throws<ObjectDisposedException>(() => partition.OpenReader(0, cut).Dispose());
        Assert.That(cut.EndOffset(T0), Is.EqualTo(1), "the captured offsets stay readable as data");
        Assert.Throws<ObjectDisposedException>(() => store.CaptureCut(T0));
    }
}
