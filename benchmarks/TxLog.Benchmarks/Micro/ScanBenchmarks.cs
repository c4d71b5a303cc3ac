using BenchmarkDotNet.Attributes;
using TxLog.Durability;
using TxLog.Records;

namespace TxLog.Benchmarks.Micro;

/// <summary>Sequential read of 100,000 100-byte records (warm page cache), CRC checked per batch.</summary>
[MemoryDiagnoser]
public class ScanBenchmarks
{
    private const int RecordCount = 100_000;
    private string _dir = "";
    private LogStore _store = null!;
    private LogPartition _partition = null!;

    /// <summary>Loads the records with an appender.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _dir = Path.Combine(Path.GetTempPath(), "txlog-bench-scan-" + Guid.NewGuid().ToString("N"));
        _store = LogStore.Open(_dir, new LogStoreOptions { Durability = DurabilityMode.None });
        _store.CreateTopic("bench");
        _partition = _store.GetPartition("bench", 0);
        using LogAppender appender = _partition.CreateAppender();
        var message = new Message(new byte[100]);
        for (int i = 0; i < RecordCount; i++)
        {
            appender.Append(in message);
        }

        appender.Flush();
    }

    /// <summary>Closes and deletes the store.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _store.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Reads every record; returns the payload bytes seen.</summary>
    [Benchmark(OperationsPerInvoke = RecordCount)]
    public long ScanAll()
    {
        long bytes = 0;
        using LogReader reader = _partition.OpenReader(0);
        while (reader.TryRead(out Record record))
        {
            bytes += record.Value.Length;
        }

        return bytes;
    }
}

/// <summary>CRC-32C throughput over buffers of typical batch sizes.</summary>
[MemoryDiagnoser]
public class CrcBenchmarks
{
    private byte[] _data = [];

    /// <summary>Buffer size in bytes.</summary>
    [Params(64, 4096, 1 << 20)]
    public int Size { get; set; }

    /// <summary>Fills the buffer with random bytes.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(7).NextBytes(_data);
    }

    /// <summary>One CRC-32C over the buffer.</summary>
    [Benchmark]
    public uint Crc32C() => Records.Crc32C.Compute(_data);
}
