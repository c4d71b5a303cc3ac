namespace TxLog.Records;

/// <summary>
/// Byte layout of Kafka's RecordBatch v2 (magic 2), all integers big-endian:
/// <code>
/// RecordBatch =>
///   BaseOffset           int64   @0   first offset of the batch (not covered by the CRC)
///   BatchLength          int32   @8   bytes that follow this field
///   PartitionLeaderEpoch int32   @12  (not covered by the CRC); TxLog writes -1
///   Magic                int8    @16  = 2
///   Crc                  uint32  @17  CRC-32C of Attributes..end of batch
///   Attributes           int16   @21  bits 0-2 compression (TxLog: 0 = none), 3 timestamp type,
///                                     4 transactional, 5 control, 6 delete horizon
///   LastOffsetDelta      int32   @23  last offset - BaseOffset
///   BaseTimestamp        int64   @27  timestamp of the first record
///   MaxTimestamp         int64   @35  largest record timestamp
///   ProducerId           int64   @43  -1 when not idempotent
///   ProducerEpoch        int16   @51  -1 when not idempotent
///   BaseSequence         int32   @53  -1 when not idempotent
///   RecordCount          int32   @57
///   Records              Record* @61
///
/// Record => Length varint, Attributes int8, TimestampDelta varlong, OffsetDelta varint,
///           KeyLength varint (-1 = null), Key, ValueLength varint (-1 = null), Value,
///           HeaderCount varint, Header* (KeyLength varint, Key utf-8, ValueLength varint (-1 = null), Value)
/// </code>
/// </summary>
internal static class RecordBatchLayout
{
    public const int BaseOffsetOffset = 0;
    public const int BaseOffsetLength = 8;
    public const int LengthOffset = BaseOffsetOffset + BaseOffsetLength;
    public const int LengthLength = 4;
    public const int PartitionLeaderEpochOffset = LengthOffset + LengthLength;
    public const int PartitionLeaderEpochLength = 4;
    public const int MagicOffset = PartitionLeaderEpochOffset + PartitionLeaderEpochLength;
    public const int MagicLength = 1;
    public const int CrcOffset = MagicOffset + MagicLength;
    public const int CrcLength = 4;
    public const int AttributesOffset = CrcOffset + CrcLength;
    public const int AttributesLength = 2;
    public const int LastOffsetDeltaOffset = AttributesOffset + AttributesLength;
    public const int LastOffsetDeltaLength = 4;
    public const int BaseTimestampOffset = LastOffsetDeltaOffset + LastOffsetDeltaLength;
    public const int BaseTimestampLength = 8;
    public const int MaxTimestampOffset = BaseTimestampOffset + BaseTimestampLength;
    public const int MaxTimestampLength = 8;
    public const int ProducerIdOffset = MaxTimestampOffset + MaxTimestampLength;
    public const int ProducerIdLength = 8;
    public const int ProducerEpochOffset = ProducerIdOffset + ProducerIdLength;
    public const int ProducerEpochLength = 2;
    public const int BaseSequenceOffset = ProducerEpochOffset + ProducerEpochLength;
    public const int BaseSequenceLength = 4;
    public const int RecordsCountOffset = BaseSequenceOffset + BaseSequenceLength;
    public const int RecordsCountLength = 4;
    public const int RecordsOffset = RecordsCountOffset + RecordsCountLength;

    /// <summary>Size of the batch header, 61 bytes.</summary>
    public const int HeaderSize = RecordsOffset;

    /// <summary>BaseOffset + BatchLength: the bytes not counted by BatchLength.</summary>
    public const int LogOverhead = LengthOffset + LengthLength;

    /// <summary>The only magic value TxLog reads and writes.</summary>
    public const byte CurrentMagic = 2;

    /// <summary>Smallest legal BatchLength: a header with no records.</summary>
    public const int MinBatchLength = HeaderSize - LogOverhead;

    public const short CompressionMask = 0x07;
    public const short TimestampTypeMask = 0x08;
    public const short TransactionalFlag = 0x10;
    public const short ControlFlag = 0x20;
    public const short DeleteHorizonFlag = 0x40;

    /// <summary>Producer id, epoch and sequence of a batch written without idempotence.</summary>
    public const long NoProducerId = -1;
    public const short NoProducerEpoch = -1;
    public const int NoSequence = -1;
    public const int NoPartitionLeaderEpoch = -1;
}
