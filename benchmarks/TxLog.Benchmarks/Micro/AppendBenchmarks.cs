using BenchmarkDotNet.Attributes;
using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Benchmarks.Micro;

/// <summary>
/// Append throughput and allocation of 100-byte records in batches of 1, 10 and 100 records, to the
/// page cache (durability None: the fsync cost is measured by the comparison runner's W2).
/// One operation = one batch; divide by BatchSize for per-record figures.
/// </summary>
[MemoryDiagnoser]
public class AppendBenchmarks
{
    private string _dir = "";
    private LogStore _store = null!;
    private LogPartition _partition = null!;
    private Message[] _batch = [];

    /// <summary>Records per appended batch.</summary>
    [Params(1, 10, 100)]
    public int BatchSize { get; set; }

    /// <summary>Opens a store in a temp directory with 256 MiB segments.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "txlog-bench-append-" + Guid.NewGuid().ToString("N"));
        _store = LogStore.Open(_dir, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 256L << 20 });
        _store.CreateTopic("bench");
        _partition = _store.GetPartition("bench", 0);
        byte[] payload = new byte[100];
        new Random(1).NextBytes(payload);
        _batch = new Message[BatchSize];
        for (int i = 0; i < BatchSize; i++)
        {
            _batch[i] = new Message(payload);
        }
    }

    /// <summary>Closes and deletes the store.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Appends one batch of <see cref="BatchSize"/> records.</summary>
    [Benchmark]
    public long AppendBatch() => _partition.Append(_batch).LastOffset;
}

/// <summary>The bulk-load path: records appended one at a time through a <see cref="LogAppender"/>.</summary>
[MemoryDiagnoser]
public class AppenderBenchmarks
{
    private string _dir = "";
    private LogStore _store = null!;
    private LogAppender _appender = null!;
    private Message _message;

    /// <summary>Opens a store and an appender with 64 KiB batches.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "txlog-bench-appender-" + Guid.NewGuid().ToString("N"));
        _store = LogStore.Open(_dir, new LogStoreOptions { Durability = DurabilityMode.None, SegmentBytes = 256L << 20 });
        _store.CreateTopic("bench");
        _appender = _store.GetPartition("bench", 0).CreateAppender();
        _message = new Message(new byte[100]);
    }

    /// <summary>Closes and deletes the store.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _appender.Flush();
        _appender.Dispose();
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Appends one 100-byte record.</summary>
    [Benchmark(OperationsPerInvoke = 1000)]
    public void AppendRecord()
    {
        for (int i = 0; i < 1000; i++)
        {
            _appender.Append(in _message);
        }
    }
}
