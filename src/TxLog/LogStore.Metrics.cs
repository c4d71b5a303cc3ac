using System.Diagnostics;
using System.Diagnostics.Metrics;
using TxLog.Consuming;
using TxLog.Coordination;
using TxLog.Diagnostics;

namespace TxLog;

public sealed partial class LogStore
{
    // Called once the store is open: the recovery report goes to the log, the span and the
    // duration histogram, and the observable gauges start reading this store.
    private void ReportOpened(long started, Activity? span)
    {
        double ms = StoreTelemetry.ElapsedMs(started);
        StoreTelemetry.Record(Telemetry.RecoveryDuration, ms, default); // a throwing listener must not fail the open (and leak the store)
        LogMessages.StoreOpened(Telemetry.Logger, Directory, ms, Recovery.CleanShutdown, Recovery.ScannedSegments, Recovery.TruncatedBytes, Recovery.RebuiltIndexes);
        span?.SetTag("txlog.recovery.clean_shutdown", Recovery.CleanShutdown);
        span?.SetTag("txlog.recovery.scanned_segments", Recovery.ScannedSegments);
        span?.SetTag("txlog.recovery.truncated_bytes", Recovery.TruncatedBytes);
        span?.SetTag("txlog.recovery.rebuilt_indexes", Recovery.RebuiltIndexes);
        span?.SetTag("txlog.recovery.actions", Recovery.Actions.Count);
        span?.SetStatus(ActivityStatusCode.Ok);

        Meter meter = Telemetry.Meter;
        meter.CreateObservableGauge("txlog.transactions.open", ObserveOpenTransactions, "{transaction}",
            "Log transactions that are open (Ongoing) or being completed (PrepareCommit/PrepareAbort).");
        meter.CreateObservableGauge("txlog.partition.high_watermark", ObserveHighWatermarks, "{offset}",
            "High watermark of each partition (tags txlog.topic, txlog.partition).");
        meter.CreateObservableGauge("txlog.partition.lso_lag", ObserveStableLag, "{offset}",
            "High watermark minus last stable offset: records a read-committed reader cannot see yet because a transaction is open.");
        meter.CreateObservableGauge("txlog.consumer_group.lag", ObserveGroupLag, "{offset}",
            "End offset minus the group's committed offset, per partition and isolation level (tags txlog.group, txlog.topic, txlog.partition, txlog.isolation).");
    }

    // Gauge callbacks run on the collector's thread, possibly while the store closes: a closing store
    // reports nothing rather than failing the whole collection with ObjectDisposedException.

    private int ObserveOpenTransactions()
    {
        int open = 0;
        try
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return 0;
            }

            foreach (TransactionDescription t in Coordinator.ListTransactions())
            {
                if (t.State is TransactionState.Ongoing or TransactionState.PrepareCommit or TransactionState.PrepareAbort)
                {
                    open++;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }

        return open;
    }

    private List<Measurement<long>> ObserveHighWatermarks() => ObservePartitions(static p => p.HighWatermark);

    // LSO is computed from a HW read of its own: clamp a HW that moved in between.
    private List<Measurement<long>> ObserveStableLag() => ObservePartitions(static p => Math.Max(0, p.HighWatermark - p.LastStableOffset));

    private List<Measurement<long>> ObservePartitions(Func<LogPartition, long> value)
    {
        var list = new List<Measurement<long>>();
        if (Volatile.Read(ref _disposed) != 0)
        {
            return list;
        }

        try
        {
            foreach (TopicDescription topic in ListTopics(includeInternal: true))
            {
                for (int p = 0; p < topic.Partitions; p++)
                {
                    if (TryGetPartitionInternal(new TopicPartition(topic.Name, p), out LogPartition? partition) && partition is not null)
                    {
                        list.Add(new Measurement<long>(value(partition), PartitionTags(topic.Name, p)));
                    }
                }
            }
        }
        catch (ObjectDisposedException)
        {
            list.Clear();
        }

        return list;
    }

    private List<Measurement<long>> ObserveGroupLag()
    {
        var list = new List<Measurement<long>>();
        if (Volatile.Read(ref _disposed) != 0)
        {
            return list;
        }

        try
        {
            AddGroupLag(list);
        }
        catch (ObjectDisposedException)
        {
            list.Clear();
        }

        return list;
    }

    private void AddGroupLag(List<Measurement<long>> list)
    {
        foreach ((string group, TopicPartition tp, long offset) in Groups.AllCommitted())
        {
            if (!TryGetPartitionInternal(tp, out LogPartition? partition) || partition is null)
            {
                continue;
            }

            TagList tags = PartitionTags(tp.Topic, tp.Partition);
            tags.Add("txlog.group", group);
            TagList committed = tags;
            tags.Add("txlog.isolation", "read_uncommitted");
            committed.Add("txlog.isolation", "read_committed");
            list.Add(new Measurement<long>(Math.Max(0, partition.EndOffset(IsolationLevel.ReadUncommitted) - offset), tags));
            list.Add(new Measurement<long>(Math.Max(0, partition.EndOffset(IsolationLevel.ReadCommitted) - offset), committed));
        }
    }

    /// <summary>Tests only: runs every gauge callback once (open transactions, HW, LSO lag, group lag counts).</summary>
    internal (int Open, int HighWatermarks, int StableLags, int GroupLags) ObserveGaugesForTests() =>
        (ObserveOpenTransactions(), ObserveHighWatermarks().Count, ObserveStableLag().Count, ObserveGroupLag().Count);

    private static TagList PartitionTags(string topic, int partition) =>
        new() { { "txlog.topic", topic }, { "txlog.partition", partition } };
}
