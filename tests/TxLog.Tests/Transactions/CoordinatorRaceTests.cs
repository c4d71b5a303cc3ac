using System.Diagnostics;
using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class CoordinatorRaceTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    // A zombie that begins a transaction and writes between InitTransactions' "finish the previous
    // epoch" step and its epoch bump must not leave that data open forever (or let the new epoch
    // commit it).
    [Test]
    public async Task A_transaction_begun_by_the_old_instance_while_InitTransactions_runs_is_aborted()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options());
        store.CreateTopic("t", 1);
        LogPartition t0 = store.GetPartition("t", 0);
        var sw = Stopwatch.StartNew();
        int iterations = 0;
        while (sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            iterations++;
            long start = t0.LogEndOffset;
            Producer zombie = await TransactionalAsync(store, "z");
            var committed = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
            using var stop = new CancellationTokenSource();
            Task zombieLoop = Task.Run(async () =>
            {
                try
                {
                    while (true)
                    {
                        zombie.BeginTransaction();
                        string value = $"zombie-{iterations}-{Guid.NewGuid():N}";
                        await zombie.ProduceAsync(T0, Msg(value));
                        await zombie.CommitTransactionAsync();
                        committed[value] = true;
                    }
                }
                catch (ProducerFencedException)
                {
                }
                catch (InvalidTransactionStateException)
                {
                }
            });
            await Task.Delay(0);
            Thread.SpinWait(200 * (iterations % 50));
            Producer fresh = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "z" });
            while (true)
            {
                try
                {
                    await fresh.InitTransactionsAsync();
                    break;
                }
                catch (InvalidTransactionStateException)
                {
                    // the zombie is committing right now: retry
                }
            }

            await zombieLoop;
            var open = t0.ProducerState.OngoingTransactions();
            fresh.BeginTransaction();
            await fresh.ProduceAsync(T0, Msg("fresh"));
            await fresh.CommitTransactionAsync();
            List<string> zombieVisible = Read(t0, start, IsolationLevel.ReadCommitted).Select(r => r.Substring(r.IndexOf(':') + 1)).Where(v => v.StartsWith("zombie-", StringComparison.Ordinal) && !committed.ContainsKey(v)).ToList();
            Assert.That(zombieVisible, Is.Empty, $"iteration {iterations}: a fenced zombie's write whose commit failed became committed (left open: {string.Join(",", open)})");
            Assert.That(t0.ProducerState.OngoingTransactions(), Is.Empty, $"iteration {iterations}: an open transaction was left behind");
            fresh.Dispose();
        }

        TestContext.Out.WriteLine($"{iterations} iterations");
    }

    // The timeout timer decides "expired" under the id's lock, lets go, and aborts under the lock
    // again: a commit plus a new transaction in between must not get the NEW transaction aborted as
    // timed out (it has just begun).
    [Test]
    public async Task The_timeout_never_aborts_a_transaction_begun_after_the_expired_one_committed()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero), manualTimestamp: true);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None, clock));
        store.CreateTopic("t", 1);
        var sw = Stopwatch.StartNew();
        int iterations = 0, committedFirst = 0;
        Producer p = await TransactionalAsync(store, "slow", TimeSpan.FromSeconds(10));
        using var stop = new CancellationTokenSource();
        Task timer = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                store.Coordinator.AbortExpiredTransactions();
            }
        }, TaskCreationOptions.LongRunning);
        // A busy thread makes the OS preempt the timer thread now and then, inside its window too.
        Task busy = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                Thread.SpinWait(1000);
            }
        }, TaskCreationOptions.LongRunning);
        try
        {
        while (sw.Elapsed < TimeSpan.FromSeconds(3))
        {
            iterations++;
            p.BeginTransaction();
            await p.ProduceAsync(T0, Msg("first"));
            clock.Advance(TimeSpan.FromSeconds(11)); // the first transaction has expired
            try
            {
                await p.CommitTransactionAsync();
            }
            catch (ProducerFencedException)
            {
                // the timer got there first: fine
                p.Dispose();
                p = await store.CreateProducerAsync(new ProducerOptions { TransactionalId = "slow", TransactionTimeout = TimeSpan.FromSeconds(10) });
                while (true)
                {
                    try
                    {
                        await p.InitTransactionsAsync();
                        break;
                    }
                    catch (InvalidTransactionStateException)
                    {
                        // the timer is aborting right now: retry
                    }
                }

                continue;
            }

            committedFirst++;
            p.BeginTransaction();
            await p.ProduceAsync(T0, Msg("second")); // begins at the current time: not expired
            Thread.SpinWait(2000);
            try
            {
                await p.CommitTransactionAsync();
            }
            catch (TransactionTimedOutException e)
            {
                Assert.Fail($"iteration {iterations}: a transaction begun 0 s ago was aborted as timed out: {e.Message}");
            }
        }

        }
        finally
        {
            stop.Cancel();
            await timer;
            await busy;
        }

        TestContext.Out.WriteLine($"{iterations} iterations, {committedFirst} first commits won");
        p.Dispose();
    }
}
