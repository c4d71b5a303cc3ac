using System.Diagnostics.Tracing;

namespace TxLog.Benchmarks.Compare;

/// <summary>Diagnostics only (TXLOG_ALLOC_SAMPLE=1): samples allocations by type through the runtime's GCAllocationTick events.</summary>
internal sealed class AllocationSampler : EventListener
{
    private readonly Dictionary<string, long> _bytes = new();

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (source.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs e)
    {
        if (e.EventName is null || !e.EventName.StartsWith("GCAllocationTick", StringComparison.Ordinal) || e.Payload is null)
        {
            return;
        }

        int typeIndex = e.PayloadNames!.IndexOf("TypeName");
        string type = typeIndex >= 0 ? e.Payload[typeIndex]?.ToString() ?? "?" : "?";
        lock (_bytes)
        {
            _bytes[type] = _bytes.GetValueOrDefault(type) + 1;
        }
    }

    public void Print()
    {
        lock (_bytes)
        {
            foreach (KeyValuePair<string, long> kv in _bytes.OrderByDescending(k => k.Value).Take(40))
            {
                Console.Error.WriteLine($"# alloc ticks {kv.Value,6}  {kv.Key}");
            }
        }
    }
}
