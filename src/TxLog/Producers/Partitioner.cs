namespace TxLog.Producers;

/// <summary>Chooses the partition of a record produced without an explicit partition.</summary>
public interface IPartitioner
{
    /// <summary>Returns a partition in [0, <paramref name="partitionCount"/>).</summary>
    /// <param name="topic">The topic.</param>
    /// <param name="key">The record key bytes (empty when there is none).</param>
    /// <param name="hasKey">False for a null key.</param>
    /// <param name="partitionCount">The topic's partition count.</param>
    int Partition(string topic, ReadOnlySpan<byte> key, bool hasKey, int partitionCount);
}

/// <summary>
/// Kafka's default partitioner: a keyed record goes to <c>(murmur2(key) &amp; 0x7fffffff) % partitions</c>,
/// so the same key maps to the same partition as in a Kafka client; keyless records go round-robin
/// per topic. Thread-safe.
/// </summary>
public sealed class DefaultPartitioner : IPartitioner
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, StrongBox> _counters = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public int Partition(string topic, ReadOnlySpan<byte> key, bool hasKey, int partitionCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitionCount, 1);
        if (hasKey)
        {
            return (Murmur2(key) & 0x7fffffff) % partitionCount;
        }

        StrongBox counter = _counters.GetOrAdd(topic, static _ => new StrongBox());
        return (int)((uint)Interlocked.Increment(ref counter.Value) % (uint)partitionCount);
    }

    /// <summary>Kafka's 32-bit murmur2 (seed 0x9747b28c), as used by its default partitioner.</summary>
    public static int Murmur2(ReadOnlySpan<byte> data)
    {
        const uint M = 0x5bd1e995;
        const int R = 24;
        int length = data.Length;
        uint h = 0x9747b28cu ^ (uint)length;
        int blocks = length / 4;
        for (int i = 0; i < blocks; i++)
        {
            int i4 = i * 4;
            uint k = data[i4] | ((uint)data[i4 + 1] << 8) | ((uint)data[i4 + 2] << 16) | ((uint)data[i4 + 3] << 24);
            k *= M;
            k ^= k >> R;
            k *= M;
            h *= M;
            h ^= k;
        }

        int tail = length & ~3;
        switch (length % 4)
        {
            case 3:
                h ^= (uint)data[tail + 2] << 16;
                h ^= (uint)data[tail + 1] << 8;
                h ^= data[tail];
                h *= M;
                break;
            case 2:
                h ^= (uint)data[tail + 1] << 8;
                h ^= data[tail];
                h *= M;
                break;
            case 1:
                h ^= data[tail];
                h *= M;
                break;
        }

        h ^= h >> 13;
        h *= M;
        h ^= h >> 15;
        return (int)h;
    }

    private sealed class StrongBox
    {
        public int Value = -1;
    }
}
