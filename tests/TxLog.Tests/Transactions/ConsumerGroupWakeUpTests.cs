using TxLog.Consuming;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>A group member's <see cref="Consumer.ConsumeAsync"/> loop never sleeps through data of a partition it has just taken.</summary>
public sealed class ConsumerGroupWakeUpTests
{
    [Test]
    public async Task A_waiting_loop_wakes_for_data_of_a_partition_taken_in_the_look_after_the_wake_up_tasks()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 2);
        store.CreateTopic("u", 1);
        using Consumer a = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        using Consumer c = store.CreateConsumer(new ConsumerOptions { GroupId = "g" });
        a.Subscribe("t"); // owns t-0 and t-1
        c.Subscribe("u"); // owns u-0

        var taken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int assignedCalls = 0;
        var options = new ConsumerOptions { GroupId = "g" };
        options.PartitionsAssigned = (_, partitions) =>
        {
            if (Interlocked.Increment(ref assignedCalls) == 1)
            {
                // B's first look of its loop takes u-0; a lets t-1 go right then (its own poll, on this
                // thread), before B takes its wake-up tasks.
                Assert.That(partitions, Is.EqualTo(new[] { new TopicPartition("u", 0) }));
                a.Consume();
            }
            else if (partitions.Contains(new TopicPartition("t", 1)))
            {
                taken.TrySetResult();
            }
        };
        using Consumer b = store.CreateConsumer(options);
        b.Subscribe("t", "u"); // target t-1 (a has it) and u-0 (c has it, after c joined first)
        Assert.That(b.Assignment, Is.Empty);
        c.Unsubscribe(); // u-0 now b's and free: b takes it at its next poll

        using var timeout = new CancellationTokenSource(Tx.Timeout);
        await using IAsyncEnumerator<ConsumeResult> loop = b.ConsumeAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        ValueTask<bool> next = loop.MoveNextAsync();
        await taken.Task.WaitAsync(timeout.Token);
        Assert.That(b.Assignment, Is.EquivalentTo(new[] { new TopicPartition("u", 0), new TopicPartition("t", 1) }));

        store.GetPartition("t", 1).Append(Msg("for-b"));
        Task<bool> moved = next.AsTask();
        Assert.That(await Task.WhenAny(moved, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(moved), "b's loop slept through a record of t-1");
        Assert.That(Text(loop.Current.Value), Is.EqualTo("for-b"));
        timeout.Cancel();
    }
}
