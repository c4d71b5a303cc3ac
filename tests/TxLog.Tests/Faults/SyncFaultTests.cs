using TxLog.Tests.Recovery;
using static TxLog.Tests.Faults.WriteFaultTests;
using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Faults;

/// <summary>
/// An fsync fails under group commit. Its leader and every follower parked behind it must complete
/// with <see cref="LogWriteException"/> (none may hang); the partition must refuse writes and flushes
/// afterwards, even though the next fsync would succeed (Linux reports an fsync error once, and the
/// pages it failed to write may be gone); readers must stay at the last acknowledged record; and a
/// reopen must find every acknowledged record intact.
/// </summary>
[TestFixture]
public sealed class SyncFaultTests : FaultFixture
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [Test]
    public async Task AFailedFsyncFailsTheLeaderAndEveryParkedFollower([Values(0, 1, 8, 40)] int followers)
    {
        const int acknowledged = 5;
        var attempted = new HashSet<string>(); // contents (without offsets) of the unacknowledged appends
        using (LogStore store = LogStore.Open(Dir.Path, Options(Fs, preallocate: false)))
        {
            store.CreateTopic(Topic);
            LogPartition partition = store.GetPartition(Topic, 0);
            for (int id = 0; id < acknowledged; id++)
            {
                await partition.AppendAsync(Record(id).ToMessage()).AsTask().WaitAsync(Limit);
            }

            // The leader's fsync blocks; followers then append and park behind it.
            Fs.FailSync(block: true);
            Task<AppendResult> leader = Task.Run(() => partition.AppendAsync(Record(1000).ToMessage()).AsTask());
            Assert.That(Fs.WaitForBlockedSync(Limit), Is.True, "the leader's fsync started");
            var waits = new List<Task<AppendResult>> { leader };
            for (int i = 0; i < followers; i++)
            {
                Task<AppendResult> follower = partition.AppendAsync(Record(2000 + i).ToMessage()).AsTask();
                Assert.That(follower.IsCompleted, Is.False, "a follower waits for the blocked fsync");
                waits.Add(follower);
            }

            Fs.ReleaseSync();
            try
            {
                await Task.WhenAll(waits).WaitAsync(Limit);
            }
            catch (LogWriteException)
            {
                // Expected; each wait is checked below.
            }

            Assert.Multiple(() =>
            {
                for (int i = 0; i < waits.Count; i++)
                {
                    Assert.That(waits[i].IsFaulted, Is.True, $"wait {i} failed");
                    Assert.That(waits[i].Exception?.InnerException, Is.InstanceOf<LogWriteException>(), $"wait {i}");
                }
            });

            // The next fsync would succeed, but what the failed one lost is unknown.
            Assert.ThrowsAsync<LogWriteException>(async () => await partition.AppendAsync(Record(3000).ToMessage()).AsTask().WaitAsync(Limit));
            Assert.ThrowsAsync<LogWriteException>(async () => await partition.FlushAsync().AsTask().WaitAsync(Limit));
            Assert.That(partition.HighWatermark, Is.EqualTo(acknowledged), "nothing after the failed fsync became durable");
            Assert.That(ReadAll(partition), Is.EqualTo(Describe(Ids(acknowledged))), "readers see the acknowledged records only");
            attempted.Add(Content(Record(1000)));
            for (int i = 0; i < followers; i++)
            {
                attempted.Add(Content(Record(2000 + i)));
            }
        }

        Assert.That(File.Exists(MarkerFile(Dir.Path)), Is.False, "a store whose fsync failed must not claim a clean shutdown");
        using LogStore reopened = LogStore.Open(Dir.Path, Options());
        List<string> all = ReadAll(reopened.GetPartition(Topic, 0));
        Assert.That(all[..acknowledged], Is.EqualTo(Describe(Ids(acknowledged))), "every acknowledged record, intact, in place");

        // What was written but never acknowledged may be there (it reached the page cache); if so, whole and once.
        Assert.That(all.Count - acknowledged, Is.LessThanOrEqualTo(followers + 1));
        var seen = new HashSet<string>();
        for (int offset = acknowledged; offset < all.Count; offset++)
        {
            string content = WithoutOffset(all[offset]);
            Assert.That(attempted, Does.Contain(content), $"record at {offset} is one that was appended");
            Assert.That(seen.Add(content), Is.True, $"record at {offset} appears once");
        }
    }

    private static string Content(TestRecord record) => WithoutOffset(Describe([[record]])[0]);

    private static string WithoutOffset(string described) => described[described.IndexOf('@', StringComparison.Ordinal)..];

    private static List<TestRecord[]> Ids(int count) => Enumerable.Range(0, count).Select(id => new[] { Record(id) }).ToList();
}
