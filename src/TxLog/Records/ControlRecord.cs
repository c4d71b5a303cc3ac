using System.Buffers.Binary;

namespace TxLog.Records;

/// <summary>Type of a transaction marker.</summary>
public enum ControlRecordType : short
{
    /// <summary>The transaction was aborted: its records are skipped by read-committed readers.</summary>
    Abort = 0,

    /// <summary>The transaction was committed.</summary>
    Commit = 1,
}

/// <summary>
/// The single record of a control batch (a COMMIT or ABORT marker):
/// <code>
/// Key   => Version int16 (= 0), Type int16 (0 = ABORT, 1 = COMMIT)
/// Value => Version int16 (= 0), CoordinatorEpoch int32
/// </code>
/// The batch carries the transactional and control attribute bits, the producer id and epoch of the
/// transaction, and sequence -1. Thread-safe: pure functions.
/// </summary>
public static class ControlRecord
{
    /// <summary>Size of the key: version + type.</summary>
    public const int KeySize = 4;

    /// <summary>Size of the value: version + coordinator epoch.</summary>
    public const int ValueSize = 6;

    /// <summary>The only control record version.</summary>
    public const short CurrentVersion = 0;

    /// <summary>Adds the marker record to a builder reset for a control batch.</summary>
    internal static void AddTo(RecordBatchBuilder builder, ControlRecordType type, int coordinatorEpoch, long timestamp)
    {
        Span<byte> key = stackalloc byte[KeySize];
        Span<byte> value = stackalloc byte[ValueSize];
        BinaryPrimitives.WriteInt16BigEndian(key, CurrentVersion);
        BinaryPrimitives.WriteInt16BigEndian(key.Slice(2), (short)type);
        BinaryPrimitives.WriteInt16BigEndian(value, CurrentVersion);
        BinaryPrimitives.WriteInt32BigEndian(value.Slice(2), coordinatorEpoch);
        builder.Add(timestamp, key, true, value, true, null);
    }

    /// <summary>Attributes of a control batch: transactional + control.</summary>
    internal const short BatchAttributes = RecordBatchLayout.TransactionalFlag | RecordBatchLayout.ControlFlag;

    /// <summary>
    /// Reads the marker type from a control record's key. Throws <see cref="CorruptRecordException"/>
    /// when the key is not a version-0 control key.
    /// </summary>
    public static ControlRecordType ReadType(ReadOnlySpan<byte> key)
    {
        if (key.Length < KeySize)
        {
            throw new CorruptRecordException($"A control record key needs {KeySize} bytes, got {key.Length}.");
        }

        short version = BinaryPrimitives.ReadInt16BigEndian(key);
        if (version != CurrentVersion)
        {
            throw new CorruptRecordException($"Unknown control record version {version}.");
        }

        short type = BinaryPrimitives.ReadInt16BigEndian(key.Slice(2));
        if (type is not ((short)ControlRecordType.Abort or (short)ControlRecordType.Commit))
        {
            throw new CorruptRecordException($"Unknown control record type {type}.");
        }

        return (ControlRecordType)type;
    }

    /// <summary>Reads the coordinator epoch from a control record's value.</summary>
    public static int ReadCoordinatorEpoch(ReadOnlySpan<byte> value)
    {
        if (value.Length < ValueSize)
        {
            throw new CorruptRecordException($"A control record value needs {ValueSize} bytes, got {value.Length}.");
        }

        return BinaryPrimitives.ReadInt32BigEndian(value.Slice(2));
    }
}
