using TxLog.Consuming;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Faults;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

/// <summary>
/// The <see cref="Consumer.ConsumeAsync"/> loop: it must wake for everything that can change what it
/// may return (a store or topic going away included) and must not leave anything behind on the
/// caller's cancellation token.
/// </summary>
public class ConsumeLoopTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    // Starts a loop that waits on an empty partition and returns how it ended.
    private static Task<Exception?> WaitingLoop(Consumer consumer, CancellationToken token) =>
        Task.Run(async () =>
        {
            try
            {
                await foreach (ConsumeResult _ in consumer.ConsumeAsync(token))
                {
                    return (Exception?)new InvalidOperationException("nothing was appended, yet a record came");
                }

                return new InvalidOperationException("the stream ended without an exception");
            }
            catch (Exception e)
            {
                return e;
            }
        });

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task A_waiting_loop_ends_with_ObjectDisposedException_when_the_store_closes(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        using var never = new CancellationTokenSource(); // the loop must end on its own
        Task<Exception?> loop = WaitingLoop(consumer, never.Token);
        await Task.Delay(50);
        Assert.That(loop.IsCompleted, Is.False, "nothing to read: the loop waits");

        store.Dispose();
        Task done = await Task.WhenAny(loop, Task.Delay(Tx.Timeout));
        Assert.That(done, Is.SameAs(loop), "the loop still waits on a closed store");
        Assert.That(await loop, Is.InstanceOf<ObjectDisposedException>());
    }

    [TestCase(DurabilityMode.None)]
    [TestCase(DurabilityMode.GroupCommit)]
    public async Task A_waiting_loop_ends_with_TopicNotFoundException_when_its_topic_is_deleted(DurabilityMode mode)
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options(mode));
        store.CreateTopic("t");
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        using var never = new CancellationTokenSource();
        Task<Exception?> loop = WaitingLoop(consumer, never.Token);
        await Task.Delay(50);
        Assert.That(loop.IsCompleted, Is.False, "nothing to read: the loop waits");

        store.DeleteTopic("t");
        Task done = await Task.WhenAny(loop, Task.Delay(Tx.Timeout));
        Assert.That(done, Is.SameAs(loop), "the loop still waits on a deleted topic");
        Assert.That(await loop, Is.InstanceOf<TopicNotFoundException>());
    }

    [Test]
    public async Task Loops_left_early_leave_nothing_registered_on_a_long_lived_token()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        await store.GetPartition("t", 0).AppendAsync(Msg("x"));
        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        using var appLifetime = new CancellationTokenSource(); // e.g. a host's stopping token

        async Task ReadOneAsync()
        {
            consumer.SeekToBeginning(T0);
            await foreach (ConsumeResult r in consumer.ConsumeAsync(appLifetime.Token))
            {
                Assert.That(Text(r.Value), Is.EqualTo("x"));
                break; // disposes the enumerator
            }
        }

        await ReadOneAsync(); // warm up (JIT, pools)
        long before = GC.GetTotalMemory(forceFullCollection: true);
        const int loops = 20_000;
        for (int i = 0; i < loops; i++)
        {
            await ReadOneAsync();
        }

        long retained = GC.GetTotalMemory(forceFullCollection: true) - before;

        // A registration per loop (a delay task plus its callback node) retains well over 100 bytes each.
        Assert.That(retained, Is.LessThan(loops * 20), $"{retained} bytes still reachable after {loops} loops");
    }

    [Test]
    public async Task Reading_records_that_are_already_there_allocates_no_wake_up_tasks()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t");
        LogPartition partition = store.GetPartition("t", 0);
        const int records = 2_000;
        for (int i = 0; i < records; i++)
        {
            await partition.AppendAsync(Msg("v"));
        }

        using Consumer consumer = store.CreateConsumer();
        consumer.Assign(T0);
        using var cts = new CancellationTokenSource(Tx.Timeout);
        int read = 0;
        await foreach (ConsumeResult _ in consumer.ConsumeAsync(cts.Token))
        {
            if (++read == 100)
            {
                break; // warmed up
            }
        }

        // What the synchronous Consume allocates per record (the result objects are the API's).
        consumer.SeekToBeginning(T0);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        int found = 0;
        for (int i = 0; i < records; i++)
        {
            found += consumer.Consume() is null ? 0 : 1;
        }

        long direct = GC.GetAllocatedBytesForCurrentThread() - allocated;
        Assert.That(found, Is.EqualTo(records));

        consumer.SeekToBeginning(T0);
        allocated = GC.GetAllocatedBytesForCurrentThread();
        read = 0;
        await foreach (ConsumeResult _ in consumer.ConsumeAsync(cts.Token))
        {
            if (++read == records)
            {
                break;
            }
        }

        long looped = GC.GetAllocatedBytesForCurrentThread() - allocated;

        // An array of wake-up tasks and a TaskCompletionSource per record would add well over 100 bytes
        // each; the loop's own state (enumerator, registration) is a few hundred bytes in all.
        Assert.That((looped - direct) / records, Is.LessThan(8), $"loop {looped / records} vs Consume {direct / records} bytes per record");
    }
}

/// <summary>A committed transaction whose marker failed on one partition must still wake the consumers of the others.</summary>
public sealed class ConsumeLoopMarkerFailureTests : FaultFixture
{
    [Test]
    public async Task A_hold_released_after_a_marker_failure_wakes_a_waiting_read_committed_consumer()
    {
        LogStoreOptions options = Options(DurabilityMode.GroupCommit);
        options.FileSystem = Fs;
        options.PreallocateBytes = 0;
        Fs.Targets = path => Path.GetFileName(Path.GetDirectoryName(path)) == "a-0" && path.EndsWith(".log", StringComparison.Ordinal);
        using LogStore store = LogStore.Open(Dir.Path, options);
        store.CreateTopic("a");
        store.CreateTopic("b");
        LogPartition b = store.GetPartition("b", 0);
        using Consumer consumer = store.CreateConsumer(new ConsumerOptions { Isolation = IsolationLevel.ReadCommitted });
        consumer.Assign(new TopicPartition("b", 0));
        using var cts = new CancellationTokenSource(Tx.Timeout);
        Task<string> first = Task.Run(async () =>
        {
            await foreach (ConsumeResult r in consumer.ConsumeAsync(cts.Token))
            {
                return Text(r.Value);
            }

            return "(stream ended)";
        });

        await using Producer p = await TransactionalAsync(store, "t1");
        p.BeginTransaction();
        await p.ProduceAsync(new TopicPartition("b", 0), Msg("b1"));
        await p.ProduceAsync(new TopicPartition("a", 0), Msg("a1"));
        store.Coordinator.StepHook = s =>
        {
            if (s == "marker:1")
            {
                // b's marker is written: make it durable now (its HW moves and wakes the consumer while
                // the hold still hides b1), then fail a's marker so the hold is dropped on that path.
                b.Log.Sync();
                Thread.Sleep(200); // the woken consumer looks (b1 still held) and waits again
                Fs.FailWrite();
            }
        };
        await p.CommitTransactionAsync(); // the decision is durable: the commit stands
        store.Coordinator.StepHook = null;
        Assert.That(b.LastStableOffset, Is.GreaterThan(1), "b1 is visible on b");

        Task done = await Task.WhenAny(first, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.That(done, Is.SameAs(first), "the consumer was not woken when the hold was dropped");
        Assert.That(await first, Is.EqualTo("b1"));
    }
}
