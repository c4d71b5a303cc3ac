using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>Runs an action (once) when a file whose path ends with a suffix is deleted.</summary>
internal sealed class DeleteHookFileSystem : DelegatingFileSystem
{
    private string? _suffix;
    private Action? _action;

    public void OnNextDelete(string suffix, Action action)
    {
        _suffix = suffix;
        _action = action;
    }

    public override void DeleteFile(string path)
    {
        if (_suffix is { } suffix && path.EndsWith(suffix, StringComparison.Ordinal))
        {
            Action action = _action!;
            _suffix = null;
            _action = null;
            action();
        }

        base.DeleteFile(path);
    }
}

/// <summary>
/// Regression (found by a bug hunt): <see cref="LogStore.EnforceRetention"/> takes the list of
/// partitions, then applies retention to each. A topic deleted meanwhile had its partitions closed, and
/// retention on them threw ObjectDisposedException out of the store's EnforceRetention (the store was
/// open), leaving the partitions after it without retention.
/// </summary>
public sealed class RetentionDuringTopicDeletionTests
{
    [Test]
    public void A_topic_deleted_while_retention_runs_is_skipped_and_the_others_are_still_trimmed()
    {
        using var dir = new TempDirectory();
        var fs = new DeleteHookFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions
        {
            Durability = DurabilityMode.None,
            SegmentBytes = 1000,
            RetentionBytes = 1,
            RetentionCheckInterval = TimeSpan.FromHours(1), // the test runs retention itself
            FileSystem = fs,
        });
        foreach (string topic in new[] { "a", "b", "c" })
        {
            store.CreateTopic(topic);
            LogPartition p = store.GetPartition(topic, 0);
            for (int i = 0; i < 20; i++)
            {
                p.Append(new Message(new byte[100]));
            }

            Assert.That(p.SegmentCount, Is.GreaterThan(1), $"precondition: {topic} has segments to delete");
        }

        // Retention reaches a-0 before b-0 and c-0 (topics in creation order): b goes while a-0 is trimmed.
        string firstOfA = Path.Combine("a-0", LogSegment.FileName(0, ".log"));
        fs.OnNextDelete(firstOfA, () => store.DeleteTopic("b"));

        int deleted = 0;
        Assert.DoesNotThrow(() => deleted = store.EnforceRetention());

        Assert.That(store.ListTopics().Select(t => t.Name), Does.Not.Contain("b"), "precondition: b was deleted during retention");
        Assert.That(store.GetPartition("a", 0).SegmentCount, Is.EqualTo(1));
        Assert.That(store.GetPartition("c", 0).SegmentCount, Is.EqualTo(1), "the partitions after the deleted topic are trimmed too");
        Assert.That(deleted, Is.GreaterThanOrEqualTo(2));
    }
}
