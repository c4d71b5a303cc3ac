using System.Buffers.Binary;
using System.Text;

namespace TxLog.Coordination;

/// <summary>
/// Records of the internal <c>__transaction_state</c> partition (ordinary RecordBatch v2 records):
/// <code>
/// Key   => Type int8 (0 = transaction metadata, 1 = producer id block), TransactionalId (UTF-8, type 0 only)
/// Value (type 0) => Version int16 (0 or 1), ProducerId int64, Epoch int16, TimeoutMs int32, State int8,
///                   StartMs int64, UpdateMs int64, PartitionCount int32, Partition*,
///                   [version 1:] UnconfirmedCount int32,
///                   Unconfirmed* (ProducerId int64, Epoch int16, PartitionCount int32, Partition*)
///   Partition => TopicLength int16, Topic (ASCII), Partition int32, LastOffset int64
/// Value (type 1) => Version int16 (= 0), NextProducerId int64   (ids below it may have been handed out)
/// </code>
/// The latest record of a key wins when the partition is replayed. The unconfirmed list (version 1)
/// names the id's committed transactions whose COMMIT markers were not yet known durable when the
/// record was written (see <see cref="TransactionMetadata.UnconfirmedCommits"/>); version 0 records,
/// written before it existed, are read as having none.
/// </summary>
internal static class TransactionLogRecords
{
    public const byte MetadataType = 0;
    public const byte ProducerIdBlockType = 1;
    private const short Version = 0;
    private const short MetadataVersion = 1;

    public static byte[] MetadataKey(string transactionalId)
    {
        byte[] key = new byte[MetadataKeySize(transactionalId)];
        WriteMetadataKey(transactionalId, key);
        return key;
    }

    /// <summary>Size of <see cref="WriteMetadataKey"/>'s output.</summary>
    public static int MetadataKeySize(string transactionalId) => 1 + Encoding.UTF8.GetByteCount(transactionalId);

    /// <summary>Writes the metadata key into <paramref name="key"/> (exactly <see cref="MetadataKeySize"/> bytes).</summary>
    public static void WriteMetadataKey(string transactionalId, Span<byte> key)
    {
        key[0] = MetadataType;
        Encoding.UTF8.GetBytes(transactionalId, key.Slice(1));
    }

    public static byte[] ProducerIdBlockKey() => [ProducerIdBlockType];

    public static byte[] MetadataValue(TransactionMetadata m)
    {
        byte[] v = new byte[MetadataValueSize(m)];
        WriteMetadataValue(m, v);
        return v;
    }

    /// <summary>Size of <see cref="WriteMetadataValue"/>'s output.</summary>
    public static int MetadataValueSize(TransactionMetadata m)
    {
        int size = 2 + 8 + 2 + 4 + 1 + 8 + 8 + 4 + 4;
        foreach (KeyValuePair<TopicPartition, long> part in m.Partitions)
        {
            size += PartitionSize(part.Key);
        }

        foreach (UnconfirmedCommit c in m.UnconfirmedCommits)
        {
            size += 8 + 2 + 4;
            foreach (KeyValuePair<TopicPartition, long> part in c.Parts)
            {
                size += PartitionSize(part.Key);
            }
        }

        return size;
    }

    /// <summary>Writes the metadata value into <paramref name="s"/> (exactly <see cref="MetadataValueSize"/> bytes).</summary>
    public static void WriteMetadataValue(TransactionMetadata m, Span<byte> s)
    {
        BinaryPrimitives.WriteInt16BigEndian(s, MetadataVersion);
        BinaryPrimitives.WriteInt64BigEndian(s.Slice(2), m.ProducerId);
        BinaryPrimitives.WriteInt16BigEndian(s.Slice(10), m.Epoch);
        BinaryPrimitives.WriteInt32BigEndian(s.Slice(12), m.TimeoutMs);
        s[16] = (byte)m.State;
        BinaryPrimitives.WriteInt64BigEndian(s.Slice(17), m.StartMs);
        BinaryPrimitives.WriteInt64BigEndian(s.Slice(25), m.UpdateMs);
        BinaryPrimitives.WriteInt32BigEndian(s.Slice(33), m.Partitions.Count);
        int p = 37;
        foreach ((TopicPartition tp, long lastOffset) in m.Partitions)
        {
            p = WritePartition(s, p, tp, lastOffset);
        }

        BinaryPrimitives.WriteInt32BigEndian(s.Slice(p), m.UnconfirmedCommits.Count);
        p += 4;
        foreach (UnconfirmedCommit c in m.UnconfirmedCommits)
        {
            BinaryPrimitives.WriteInt64BigEndian(s.Slice(p), c.ProducerId);
            BinaryPrimitives.WriteInt16BigEndian(s.Slice(p + 8), c.Epoch);
            BinaryPrimitives.WriteInt32BigEndian(s.Slice(p + 10), c.Parts.Count);
            p += 14;
            foreach ((TopicPartition tp, long lastOffset) in c.Parts)
            {
                p = WritePartition(s, p, tp, lastOffset);
            }
        }
    }

    // Partition => TopicLength int16, Topic (ASCII), Partition int32, LastOffset int64.
    internal static int PartitionSize(TopicPartition tp) => 2 + tp.Topic.Length + 4 + 8;

    private static int WritePartition(Span<byte> s, int p, TopicPartition tp, long lastOffset)
    {
        BinaryPrimitives.WriteInt16BigEndian(s.Slice(p), (short)tp.Topic.Length);
        p += 2;
        p += Encoding.ASCII.GetBytes(tp.Topic, s.Slice(p));
        BinaryPrimitives.WriteInt32BigEndian(s.Slice(p), tp.Partition);
        BinaryPrimitives.WriteInt64BigEndian(s.Slice(p + 4), lastOffset);
        return p + 12;
    }

    private static int ReadPartitions(ReadOnlySpan<byte> v, int p, ICollection<KeyValuePair<TopicPartition, long>> into)
    {
        int count = BinaryPrimitives.ReadInt32BigEndian(v.Slice(p));
        p += 4;
        if (count < 0)
        {
            throw new ArgumentException("negative partition count");
        }

        for (int i = 0; i < count; i++)
        {
            int topicLength = BinaryPrimitives.ReadInt16BigEndian(v.Slice(p));
            string topic = Encoding.ASCII.GetString(v.Slice(p + 2, topicLength));
            p += 2 + topicLength;
            into.Add(new KeyValuePair<TopicPartition, long>(new TopicPartition(topic, BinaryPrimitives.ReadInt32BigEndian(v.Slice(p))), BinaryPrimitives.ReadInt64BigEndian(v.Slice(p + 4))));
            p += 12;
        }

        return p;
    }

    public static byte[] ProducerIdBlockValue(long nextProducerId)
    {
        byte[] v = new byte[10];
        BinaryPrimitives.WriteInt16BigEndian(v, Version);
        BinaryPrimitives.WriteInt64BigEndian(v.AsSpan(2), nextProducerId);
        return v;
    }

    /// <summary>Decodes a metadata value; throws <see cref="CorruptRecordException"/> when malformed.</summary>
    public static TransactionMetadata ReadMetadata(string transactionalId, ReadOnlySpan<byte> v)
    {
        try
        {
            short version = BinaryPrimitives.ReadInt16BigEndian(v);
            if (version is < 0 or > MetadataVersion)
            {
                throw new CorruptRecordException($"Unknown transaction state record version {version} for '{transactionalId}'.");
            }

            var m = new TransactionMetadata(transactionalId, BinaryPrimitives.ReadInt64BigEndian(v.Slice(2)),
                BinaryPrimitives.ReadInt16BigEndian(v.Slice(10)), BinaryPrimitives.ReadInt32BigEndian(v.Slice(12)));
            byte state = v[16];
            if (state > (byte)TransactionState.PrepareEpochFence)
            {
                throw new CorruptRecordException($"Unknown transaction state {state} for '{transactionalId}'.");
            }

            m.Restore((TransactionState)state);
            m.StartMs = BinaryPrimitives.ReadInt64BigEndian(v.Slice(17));
            m.UpdateMs = BinaryPrimitives.ReadInt64BigEndian(v.Slice(25));
            int p = ReadPartitions(v, 33, m.Partitions);
            if (version >= 1)
            {
                int unconfirmed = BinaryPrimitives.ReadInt32BigEndian(v.Slice(p));
                p += 4;
                if (unconfirmed < 0)
                {
                    throw new ArgumentException("negative count");
                }

                for (int i = 0; i < unconfirmed; i++)
                {
                    var c = new UnconfirmedCommit(BinaryPrimitives.ReadInt64BigEndian(v.Slice(p)), BinaryPrimitives.ReadInt16BigEndian(v.Slice(p + 8)));
                    p = ReadPartitions(v, p + 10, c.Parts);
                    m.UnconfirmedCommits.Add(c);
                }
            }

            if (p != v.Length)
            {
                throw new ArgumentException("trailing bytes");
            }

            return m;
        }
        catch (Exception e) when (e is ArgumentException or IndexOutOfRangeException)
        {
            // A record too short for its fields (or with a bad topic name) under a valid CRC.
            throw new CorruptRecordException($"Truncated or malformed transaction state record for '{transactionalId}'.");
        }
    }

    public static long ReadProducerIdBlock(ReadOnlySpan<byte> v)
    {
        if (v.Length < 10 || BinaryPrimitives.ReadInt16BigEndian(v) != Version)
        {
            throw new CorruptRecordException("Malformed producer id block record.");
        }

        return BinaryPrimitives.ReadInt64BigEndian(v.Slice(2));
    }
}
