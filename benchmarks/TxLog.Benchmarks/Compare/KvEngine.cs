using System.Buffers.Binary;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// An engine that can run the point-write workload <c>kv-put</c> (<see cref="Workload.KvPut"/>): a key-value
/// table loaded with <see cref="KvData"/>'s keys, then K writers each upserting one random key per durable
/// transaction. Implemented next to <see cref="IEngine"/> by the engines that take part (txlog, sqlite,
/// raw-prealloc); the runner skips every other engine.
/// </summary>
/// <remarks>
/// An engine may run the workload in several configurations (TxLog's three sync modes, SQLite's two
/// <c>synchronous</c> settings); each is a variant, reported as its own JSON workload name, and each runs in
/// a fresh store loaded from scratch.
/// </remarks>
public interface IKvEngine
{
    /// <summary>
    /// The JSON workload names of this engine's <c>kv-put</c> configurations (e.g. <c>kv_put_instant</c>);
    /// empty when the engine does not run <c>kv-put</c>.
    /// </summary>
    IReadOnlyList<string> KvPutVariants { get; }

    /// <summary>Opens a fresh key-value store for <paramref name="variant"/> in <paramref name="directory"/>. Untimed.</summary>
    ValueTask<IKvStore> OpenKvAsync(string directory, string variant);
}

/// <summary>One open key-value store of an <see cref="IKvEngine"/>.</summary>
public interface IKvStore : IAsyncDisposable
{
    /// <summary>
    /// Setup, untimed: stores keys <c>KvData.Key(0..count-1)</c> with the values of
    /// <see cref="KvData.FillLoadValue"/>, in large transactions or batches, durably.
    /// </summary>
    ValueTask LoadAsync(long count);

    /// <summary>Creates the writer for <paramref name="writerId"/> (0..K-1). Untimed (connections etc.).</summary>
    ValueTask<IKvWriter> CreateWriterAsync(int writerId);
}

/// <summary>A <c>kv-put</c> writer: owned by one runner thread, never called concurrently with itself.</summary>
public interface IKvWriter : IAsyncDisposable
{
    /// <summary>
    /// Runs one transaction that sets <paramref name="key"/> to <paramref name="value"/> (an upsert) and
    /// completes once it is committed as the variant says (durable for the Instant / FULL / raw variants).
    /// Both buffers are reused by the runner as soon as the call completes.
    /// </summary>
    ValueTask PutAsync(byte[] key, byte[] value);
}

/// <summary>
/// The data of the MVCC workloads (<c>kv-put</c>, <c>kv-read</c>, <c>mvcc-recovery</c> (b), <c>mvcc-memory</c>):
/// 16-byte keys (8-byte big-endian index + 8 zero bytes, so key order is index order) and 100-byte values.
/// </summary>
public static class KvData
{
    /// <summary>Key length in bytes.</summary>
    public const int KeySize = 16;

    /// <summary>Value length in bytes.</summary>
    public const int ValueSize = 100;

    /// <summary>The stream used for <see cref="WorkloadRunner.CreatePayload"/> of load values.</summary>
    private const int LoadStream = 77;

    private static readonly byte[] LoadPattern = WorkloadRunner.CreatePayload(writerId: 0, ValueSize, LoadStream);

    /// <summary>A new key for <paramref name="index"/>.</summary>
    public static byte[] Key(long index)
    {
        byte[] key = new byte[KeySize];
        FillKey(key, index);
        return key;
    }

    /// <summary>Writes the key of <paramref name="index"/> into <paramref name="key"/> (16 bytes).</summary>
    public static void FillKey(Span<byte> key, long index)
    {
        BinaryPrimitives.WriteInt64BigEndian(key, index);
        key.Slice(sizeof(long), KeySize - sizeof(long)).Clear();
    }

    /// <summary>Writes the loaded value of <paramref name="index"/>: random bytes whose first 8 are the index (little-endian).</summary>
    public static void FillLoadValue(Span<byte> value, long index)
    {
        LoadPattern.CopyTo(value);
        BinaryPrimitives.WriteInt64LittleEndian(value, index);
    }
}
