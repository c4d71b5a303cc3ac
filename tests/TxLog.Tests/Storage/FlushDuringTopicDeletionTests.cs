using TxLog.Durability;
using TxLog.Records;
using TxLog.Storage;

namespace TxLog.Tests.Storage;

/// <summary>Runs an action (once) when a file whose path ends with a suffix is fsynced, before the fsync.</summary>
internal sealed class SyncHookFileSystem : DelegatingFileSystem
{
    private string? _suffix;
    private Action? _action;

    public void OnNextSync(string suffix, Action action)
    {
        _action = action;
        Volatile.Write(ref _suffix, suffix);
    }

    protected override IStorageFile WrapFile(string path, IStorageFile file) => new HookedFile(this, file);

    private void BeforeSync(string path)
    {
        if (Volatile.Read(ref _suffix) is { } suffix && path.EndsWith(suffix, StringComparison.Ordinal)
            && Interlocked.CompareExchange(ref _suffix, null, suffix) == suffix)
        {
            Action action = _action!;
            _action = null;
            action();
        }
    }

    private sealed class HookedFile(SyncHookFileSystem owner, IStorageFile inner) : DelegatingFile(inner)
    {
        public override void Sync()
        {
            owner.BeforeSync(Path);
            base.Sync();
        }
    }
}

/// <summary>
/// Regression (found by a bug hunt): <see cref="LogStore.FlushAsync"/> takes the list of partitions,
/// then flushes each. A topic deleted meanwhile had its partitions closed, and flushing them threw
/// ObjectDisposedException out of the store's FlushAsync (the store was open), leaving the partitions
/// after it unflushed (as EnforceRetention did, see <see cref="RetentionDuringTopicDeletionTests"/>).
/// </summary>
public sealed class FlushDuringTopicDeletionTests
{
    [Test]
    public void A_topic_deleted_while_the_store_flushes_is_skipped_and_the_others_are_still_flushed()
    {
        using var dir = new TempDirectory();
        var fs = new SyncHookFileSystem();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions
        {
            Durability = DurabilityMode.Periodic,
            FlushInterval = TimeSpan.FromHours(1), // nothing is fsynced but by the test's flush
            RetentionCheckInterval = TimeSpan.FromHours(1),
            PreallocateBytes = 0,
            FileSystem = fs,
        });
        foreach (string topic in new[] { "a", "b", "c" })
        {
            store.CreateTopic(topic);
            store.GetPartition(topic, 0).Append(new Message(new byte[100]));
        }

        LogPartition c = store.GetPartition("c", 0);
        Assert.That(c.HighWatermark, Is.EqualTo(0), "precondition: c-0 is not flushed yet");

        // The flush reaches a-0 before b-0 and c-0 (topics in creation order): b goes while a-0 is fsynced.
        fs.OnNextSync(Path.Combine("a-0", LogSegment.FileName(0, ".log")), () => store.DeleteTopic("b"));

        Assert.DoesNotThrowAsync(async () => await store.FlushAsync());

        Assert.That(store.TopicExists("b"), Is.False, "precondition: b was deleted during the flush");
        Assert.That(store.GetPartition("a", 0).HighWatermark, Is.EqualTo(1));
        Assert.That(c.HighWatermark, Is.EqualTo(1), "the partitions after the deleted topic are flushed too");
    }
}
