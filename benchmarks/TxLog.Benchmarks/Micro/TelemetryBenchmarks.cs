using System.Diagnostics.Metrics;
using BenchmarkDotNet.Attributes;
using TxLog.Diagnostics;
using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Benchmarks.Micro;

/// <summary>
/// The cost of the metrics on the append path: the same 10-record batch appended with nobody listening
/// to the TxLog meter and with a <see cref="MeterListener"/> that aggregates every measurement.
/// </summary>
[MemoryDiagnoser]
public class TelemetryBenchmarks
{
    private string _dir = "";
    private LogStore _store = null!;
    private LogPartition _partition = null!;
    private Message[] _batch = [];
    private MeterListener? _listener;
    private long _sum;

    /// <summary>Whether a MeterListener is attached to the store's meter.</summary>
    [Params(false, true)]
    public bool Listening { get; set; }

    /// <summary>Opens a store (durability None) and attaches the listener if asked.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "txlog-bench-telemetry-" + Guid.NewGuid().ToString("N"));
        if (Listening)
        {
            _listener = new MeterListener
            {
                InstrumentPublished = (instrument, listener) =>
                {
                    if (instrument.Meter.Name == TxLogDiagnostics.MeterName)
                    {
                        listener.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _listener.SetMeasurementEventCallback<long>((_, value, _, _) => _sum += value);
            _listener.Start();
        }

        _store = LogStore.Open(_dir, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 256L << 20 });
        _store.CreateTopic("bench");
        _partition = _store.GetPartition("bench", 0);
        _batch = new Message[10];
        for (int i = 0; i < _batch.Length; i++)
        {
            _batch[i] = new Message(new byte[100]);
        }
    }

    /// <summary>Closes and deletes the store.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _listener?.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Appends one batch of 10 records of 100 bytes.</summary>
    [Benchmark]
    public long AppendBatch() => _partition.Append(_batch).LastOffset;
}
