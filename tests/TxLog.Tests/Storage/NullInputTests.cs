using TxLog.Consuming;
using TxLog.Records;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Storage;

/// <summary>Null and undefined input gets an exception that names what is wrong (found by an input hunt).</summary>
public class NullInputTests
{
    [Test]
    public void Null_topics_and_undefined_options_name_the_argument()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        Assert.That(Assert.Throws<ArgumentNullException>(() => store.GetPartition(null!, 0))!.ParamName, Is.EqualTo("topic"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => store.PartitionCount(null!))!.ParamName, Is.EqualTo("topic"));
        Assert.That(Assert.Throws<ArgumentNullException>(() => store.TopicExists(null!))!.ParamName, Is.EqualTo("name"));
        using Consumer consumer = store.CreateConsumer();
        Assert.That(Assert.Throws<ArgumentNullException>(() => consumer.Subscribe((IEnumerable<string>)null!))!.ParamName, Is.EqualTo("topics"));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CreateConsumer(new ConsumerOptions { Isolation = (IsolationLevel)7 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CreateConsumer(new ConsumerOptions { AutoOffsetReset = (AutoOffsetReset)7 }));
    }

    [Test]
    public void A_default_header_is_refused_before_anything_is_written()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition partition = store.GetPartition("t", 0);
        var message = Msg("v") with { Headers = [new RecordHeader("ok", new byte[] { 1 }), default] };
        ArgumentException? e = Assert.Throws<ArgumentException>(() => partition.Append(message));
        Assert.That(e!.Message, Does.Contain("no key"));
        Assert.That(partition.LogEndOffset, Is.Zero);
    }
}
