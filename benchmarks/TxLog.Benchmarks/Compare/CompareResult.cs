using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// One measured figure: an engine on a workload with K writers. Printed as one JSON line in the field order
/// of WORKLOADS.md. Latency and fairness fields exist only for W2/W3; for W1/W4 they are written as
/// <c>null</c> rather than a zero that would read like a measurement.
/// </summary>
public sealed class CompareResult(
    string engine,
    string workload,
    int writers,
    long operations,
    double seconds,
    long payloadBytes,
    LatencyHistogram? latency = null,
    long? minWriterOperations = null,
    double? bytesPerEntry = null)
{
    /// <summary>The engine's name.</summary>
    public string Engine { get; } = engine;

    /// <summary>
    /// <c>append</c>, <c>commit</c>, <c>outbox</c>, <c>outbox_log</c>, <c>scan</c>, <c>scan_cold</c>, or one of the
    /// TxLog-only <c>txn_overhead_idempotent</c>, <c>txn_overhead_transactional</c>, <c>scan_read_uncommitted</c>,
    /// <c>scan_read_committed</c>, or one of the MVCC workloads' <c>kv_put_*</c>, <c>kv_put</c>, <c>kv_read</c>,
    /// <c>kv_read_100</c>, <c>mvcc_recovery_redo</c>, <c>mvcc_recovery_checkpoint</c>, <c>mvcc_memory</c>.
    /// </summary>
    public string Workload { get; } = workload;

    /// <summary>K: concurrent writers (1 for W1 and W4).</summary>
    public int Writers { get; } = writers;

    /// <summary>Records (W1, W2, W4, TxLog-only workloads) or transactions (W3, W3 log-only).</summary>
    public long Operations { get; } = operations;

    /// <summary>Length of the timed window.</summary>
    public double Seconds { get; } = seconds;

    /// <summary>Payload bytes moved in the window (record payloads or outbox messages only).</summary>
    public long PayloadBytes { get; } = payloadBytes;

    /// <summary>Per-operation latency, start to durable (W2, W3, W3 log-only only).</summary>
    public LatencyHistogram? Latency { get; } = latency;

    /// <summary>Operations of the least successful writer (W2, W3, W3 log-only only).</summary>
    public long? MinWriterOperations { get; } = minWriterOperations;

    /// <summary>
    /// <c>mvcc_memory</c> only: managed heap bytes per map entry. Written as <c>bytes_per_entry</c> after the
    /// usual fields, and only when set, so every other JSON line keeps exactly the WORKLOADS.md fields.
    /// </summary>
    public double? BytesPerEntry { get; } = bytesPerEntry;

    /// <summary>Operations per second.</summary>
    public double OperationsPerSecond => Operations / Seconds;

    /// <summary>Payload megabytes (10^6 bytes) per second.</summary>
    public double MegabytesPerSecond => PayloadBytes / 1e6 / Seconds;

    /// <summary>Median latency in microseconds, or null.</summary>
    public double? P50Micros => Micros(Latency?.ValueAtQuantile(0.50));

    /// <summary>99th-percentile latency in microseconds, or null.</summary>
    public double? P99Micros => Micros(Latency?.ValueAtQuantile(0.99));

    /// <summary>Largest latency in microseconds, or null.</summary>
    public double? MaxMicros => Micros(Latency?.MaxTicks);

    /// <summary>The result as one JSON object on one line.</summary>
    public string ToJson()
    {
        var json = new StringBuilder(256);
        json.Append("{\"engine\":").Append(JsonSerializer.Serialize(Engine));
        json.Append(",\"workload\":").Append(JsonSerializer.Serialize(Workload));
        json.Append(",\"writers\":").Append(Writers.ToString(CultureInfo.InvariantCulture));
        json.Append(",\"ops\":").Append(Operations.ToString(CultureInfo.InvariantCulture));
        json.Append(",\"seconds\":").Append(Number(Seconds, "F3"));
        json.Append(",\"ops_per_s\":").Append(Number(OperationsPerSecond, "F1"));
        json.Append(",\"mb_per_s\":").Append(Number(MegabytesPerSecond, "F2"));
        json.Append(",\"p50_us\":").Append(Number(P50Micros, "F1"));
        json.Append(",\"p99_us\":").Append(Number(P99Micros, "F1"));
        json.Append(",\"max_us\":").Append(Number(MaxMicros, "F1"));
        json.Append(",\"min_writer_ops\":").Append(MinWriterOperations?.ToString(CultureInfo.InvariantCulture) ?? "null");
        if (BytesPerEntry is { } perEntry)
        {
            json.Append(",\"bytes_per_entry\":").Append(Number(perEntry, "F1"));
        }

        json.Append('}');
        return json.ToString();
    }

    private static double? Micros(double? ticks) => ticks * 1e6 / Stopwatch.Frequency;

    private static string Number(double? value, string format) =>
        value is { } v && double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "null";
}
