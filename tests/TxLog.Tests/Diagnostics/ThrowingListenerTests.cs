using System.Diagnostics.Metrics;
using TxLog.Durability;
using TxLog.Producers;
using TxLog.Tests.Storage;
using static TxLog.Tests.Storage.TestRecords;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Diagnostics;

/// <summary>A metrics listener whose callback throws must not fail (or half-fail) the operation being measured.</summary>
[NonParallelizable]
public sealed class ThrowingListenerTests
{
    private static readonly TopicPartition T0 = new("t", 0);

    // Enables one instrument of the store at `directory` and throws from every measurement of it.
    private static MeterListener Throwing(string directory, string instrumentName)
    {
        string full = Path.GetFullPath(directory);
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == instrumentName && instrument.Meter.Tags is { } tags
                    && tags.Any(t => t.Key == TxLog.Diagnostics.TxLogDiagnostics.StoreTag && Equals(t.Value, full)))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => throw new InvalidOperationException("listener bug"));
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => throw new InvalidOperationException("listener bug"));
        listener.Start();
        return listener;
    }

    [Test]
    public void A_listener_that_throws_on_the_recovery_duration_does_not_fail_the_open()
    {
        using var dir = new TempDirectory();
        using (MeterListener listener = Throwing(dir.Path, "txlog.recovery.duration"))
        {
            LogStore? store = null;
            Assert.DoesNotThrow(() => store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None }));
            store?.Dispose();
        }

        // And the directory is not left locked by a store nobody can close.
        using LogStore again = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.None });
    }

    [Test]
    public async Task A_listener_that_throws_on_the_aborted_counter_does_not_fail_an_administrative_abort()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, new LogStoreOptions { Durability = DurabilityMode.GroupCommit });
        store.CreateTopic("t");
        await using Producer producer = await TransactionalAsync(store, "hanging");
        producer.BeginTransaction();
        await producer.ProduceAsync(T0, Msg("a"));

        using MeterListener listener = Throwing(dir.Path, "txlog.transactions.aborted");
        bool aborted = false;
        Assert.DoesNotThrowAsync(async () => aborted = await store.AbortTransactionAsync("hanging"));
        Assert.That(aborted, Is.True);
    }

    [Test]
    public async Task A_listener_that_throws_on_the_timed_out_counter_does_not_stop_the_timeout_sweep()
    {
        using var dir = new TempDirectory();
        var clock = new ManualClock(DateTimeOffset.UnixEpoch.AddDays(20000), manualTimestamp: true);
        using LogStore store = LogStore.Open(dir.Path, Options(DurabilityMode.None, clock));
        store.CreateTopic("t");
        await using Producer first = await TransactionalAsync(store, "slow-1", TimeSpan.FromSeconds(10));
        await using Producer second = await TransactionalAsync(store, "slow-2", TimeSpan.FromSeconds(10));
        first.BeginTransaction();
        await first.ProduceAsync(T0, Msg("a"));
        second.BeginTransaction();
        await second.ProduceAsync(T0, Msg("b"));
        clock.Advance(TimeSpan.FromSeconds(11));

        using MeterListener listener = Throwing(dir.Path, "txlog.transactions.timed_out");
        int aborted = -1;
        Assert.DoesNotThrow(() => aborted = store.Coordinator.AbortExpiredTransactions());
        Assert.That(aborted, Is.EqualTo(2), "both expired transactions are aborted in one sweep");
    }
}
