using TxLog.Storage;

namespace TxLog.Tests.Storage;

public class TopicTests
{
    [TestCase("../x")]
    [TestCase("a/b")]
    [TestCase("a\\b")]
    [TestCase("")]
    [TestCase(".")]
    [TestCase("..")]
    [TestCase("héllo")]
    [TestCase("日本")]
    [TestCase("with space")]
    [TestCase("tab\t")]
    public void Illegal_names_are_rejected_before_touching_the_disk(string name)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        string[] before = Directory.GetFileSystemEntries(dir.Path);

        ArgumentException? e = Assert.Throws(Is.InstanceOf<ArgumentException>(), () => store.CreateTopic(name)) as ArgumentException;
        Assert.That(e!.ParamName, Is.EqualTo("name"));
        Assert.That(Directory.GetFileSystemEntries(dir.Path), Is.EquivalentTo(before));
        Assert.That(store.ListTopics(), Is.Empty);
    }

    [Test]
    public void Names_longer_than_249_characters_are_rejected_and_249_is_accepted()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        Assert.Throws<ArgumentException>(() => store.CreateTopic(new string('a', 250)));
        store.CreateTopic(new string('a', 249));
        Assert.That(store.ListTopics().Single().Name, Has.Length.EqualTo(249));
    }

    [Test]
    public void Null_name_throws_ArgumentNullException()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        Assert.Throws<ArgumentNullException>(() => store.CreateTopic(null!));
    }

    [Test]
    public void Topics_survive_reopen_with_their_partition_counts_and_options()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("orders", 3, new TopicOptions { SegmentBytes = 1 << 20, RetentionTime = TimeSpan.FromHours(5) });
            store.CreateTopic("__my_internal-looking.topic", 1);
            store.CreateTopic("a.b-c_d", 2);
        }

        using (LogStore store = LogStore.Open(dir.Path))
        {
            IReadOnlyList<TopicDescription> topics = store.ListTopics();
            Assert.That(topics.Select(t => $"{t.Name}/{t.Partitions}"), Is.EqualTo(new[] { "__my_internal-looking.topic/1", "a.b-c_d/2", "orders/3" }));
            TopicOptions options = topics.Single(t => t.Name == "orders").Options;
            Assert.That(options.SegmentBytes, Is.EqualTo(1 << 20));
            Assert.That(options.RetentionTime, Is.EqualTo(TimeSpan.FromHours(5)));
            Assert.That(options.RetentionBytes, Is.Null);
            Assert.That(Directory.Exists(Path.Combine(dir.Path, "orders-2")), Is.True);
        }
    }

    [Test]
    public void Creating_an_existing_topic_fails_and_changes_nothing()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        store.CreateTopic("t", 2);
        store.GetPartition("t", 0).Append(new TxLog.Records.Message(TestRecords.Bytes("v")));
        Assert.Throws<TopicAlreadyExistsException>(() => store.CreateTopic("t", 5));
        Assert.That(store.ListTopics().Single().Partitions, Is.EqualTo(2));
        Assert.That(store.GetPartition("t", 0).LogEndOffset, Is.EqualTo(1));
    }

    [Test]
    public void Deleting_a_topic_removes_its_data_and_the_name_can_be_reused()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("t", 2);
            store.GetPartition("t", 1).Append(new TxLog.Records.Message(TestRecords.Bytes("old")));
            store.DeleteTopic("t");
            Assert.That(Directory.Exists(Path.Combine(dir.Path, "t-1")), Is.False);
            Assert.Throws<TopicNotFoundException>(() => store.GetPartition("t", 0));
            store.CreateTopic("t", 2);
            Assert.That(store.GetPartition("t", 1).LogEndOffset, Is.Zero);
        }

        using (LogStore store = LogStore.Open(dir.Path))
        {
            Assert.That(store.ListTopics().Single().Name, Is.EqualTo("t"));
            Assert.That(store.GetPartition("t", 1).LogEndOffset, Is.Zero);
        }
    }

    [Test]
    public void Orphan_partition_directories_of_a_deleted_topic_are_removed_at_open()
    {
        // Simulates a crash after the topic list was rewritten but before the directories were deleted.
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("keep", 1);
        }

        Directory.CreateDirectory(Path.Combine(dir.Path, "gone-0"));
        File.WriteAllBytes(Path.Combine(dir.Path, "gone-0", "00000000000000000000.log"), [1, 2, 3]);
        Directory.CreateDirectory(Path.Combine(dir.Path, "not-a-partition"));

        using (LogStore store = LogStore.Open(dir.Path))
        {
            Assert.That(Directory.Exists(Path.Combine(dir.Path, "gone-0")), Is.False);
            Assert.That(Directory.Exists(Path.Combine(dir.Path, "not-a-partition")), Is.True, "only topic-partition directories are touched");
            Assert.That(store.Recovery.Actions, Has.Some.Contains("gone-0"));
        }
    }

    [Test]
    public void Unknown_topic_and_partition_give_clear_errors()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        store.CreateTopic("t", 2);
        Assert.Throws<TopicNotFoundException>(() => store.GetPartition("nope", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.GetPartition("t", 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.GetPartition("t", -1));
        Assert.Throws<TopicNotFoundException>(() => store.DeleteTopic("nope"));
        Assert.Throws<ArgumentOutOfRangeException>(() => store.CreateTopic("zero", 0));
    }

    [Test]
    public void Corrupt_topic_list_is_reported_not_ignored()
    {
        using var dir = new TempDirectory();
        using (LogStore store = LogStore.Open(dir.Path))
        {
            store.CreateTopic("t", 1);
        }

        string meta = Path.Combine(dir.Path, "topics.meta");
        byte[] bytes = File.ReadAllBytes(meta);
        bytes[^3] ^= 0x40;
        File.WriteAllBytes(meta, bytes);
        CorruptIndexException e = Assert.Throws<CorruptIndexException>(() => LogStore.Open(dir.Path))!;
        Assert.That(e.FilePath, Is.EqualTo(meta));

        // The failed open released the lock.
        File.Delete(meta);
        using LogStore reopened = LogStore.Open(dir.Path);
        Assert.That(reopened.ListTopics(), Is.Empty);
    }

    [Test]
    public void Internal_topics_exist_are_listed_only_on_request_and_cannot_be_created_or_deleted()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path);
        Assert.That(store.ListTopics(), Is.Empty);
        Assert.That(store.ListTopics(includeInternal: true).Select(t => t.Name), Is.EquivalentTo(new[] { "__transaction_state", "__consumer_offsets" }));
        Assert.Throws<TopicAlreadyExistsException>(() => store.CreateTopic("__transaction_state"));
        Assert.Throws<ArgumentException>(() => store.DeleteTopic("__consumer_offsets"));
        Assert.That(store.TopicExists("__consumer_offsets"), Is.True);
    }

    [Test]
    public void Topic_name_rule_is_public_and_names_the_parameter()
    {
        ArgumentException e = Assert.Throws<ArgumentException>(() => TopicName.Validate("a/b", "topicName"))!;
        Assert.That(e.ParamName, Is.EqualTo("topicName"));
        Assert.That(e.Message, Does.Contain("'/'"));
        Assert.DoesNotThrow(() => TopicName.Validate("Az09._-"));
    }
}
