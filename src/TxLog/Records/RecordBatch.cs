using System.Buffers.Binary;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Records;

/// <summary>Outcome of checking the bytes at a position for a whole, valid batch.</summary>
public enum BatchCheck
{
    /// <summary>A complete batch with magic 2, a plausible length and a matching CRC.</summary>
    Valid,

    /// <summary>Fewer bytes remain than the header or the stated length needs (a torn write).</summary>
    Truncated,

    /// <summary>The length field is below the minimum header size or above the allowed maximum.</summary>
    BadLength,

    /// <summary>The magic byte is not 2.</summary>
    BadMagic,

    /// <summary>The stored CRC-32C does not match the bytes.</summary>
    BadCrc,
}

/// <summary>
/// A read-only view of one RecordBatch v2 in a span (see <see cref="RecordBatchLayout"/>). Header
/// fields are read on demand; records are decoded lazily by the enumerator, which validates every
/// length against the bytes that remain and throws <see cref="CorruptRecordException"/> instead of
/// reading out of bounds. Create one with <see cref="RecordBatch(ReadOnlySpan{byte})"/> after
/// <see cref="Check"/> has said <see cref="BatchCheck.Valid"/>.
/// </summary>
public readonly ref struct RecordBatch
{
    private readonly ReadOnlySpan<byte> _bytes;

    /// <summary>Wraps the bytes of exactly one batch (log overhead included).</summary>
    public RecordBatch(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < L.HeaderSize)
        {
            throw new CorruptRecordException($"A record batch needs at least {L.HeaderSize} bytes, got {bytes.Length}.");
        }

        _bytes = bytes;
    }

    /// <summary>The raw bytes of the batch.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Offset of the first record.</summary>
    public long BaseOffset => BinaryPrimitives.ReadInt64BigEndian(_bytes.Slice(L.BaseOffsetOffset));

    /// <summary>The batch length field: bytes after it.</summary>
    public int BatchLength => BinaryPrimitives.ReadInt32BigEndian(_bytes.Slice(L.LengthOffset));

    /// <summary>Total size in bytes, header included.</summary>
    public int SizeInBytes => BatchLength + L.LogOverhead;

    /// <summary>The partition leader epoch field (-1 in batches TxLog writes).</summary>
    public int PartitionLeaderEpoch => BinaryPrimitives.ReadInt32BigEndian(_bytes.Slice(L.PartitionLeaderEpochOffset));

    /// <summary>The magic byte (2).</summary>
    public byte Magic => _bytes[L.MagicOffset];

    /// <summary>The stored CRC-32C.</summary>
    public uint Crc => BinaryPrimitives.ReadUInt32BigEndian(_bytes.Slice(L.CrcOffset));

    /// <summary>The attributes bit field.</summary>
    public short Attributes => BinaryPrimitives.ReadInt16BigEndian(_bytes.Slice(L.AttributesOffset));

    /// <summary>Last offset minus base offset.</summary>
    public int LastOffsetDelta => BinaryPrimitives.ReadInt32BigEndian(_bytes.Slice(L.LastOffsetDeltaOffset));

    /// <summary>Offset of the last record.</summary>
    public long LastOffset => BaseOffset + LastOffsetDelta;

    /// <summary>Offset that follows this batch.</summary>
    public long NextOffset => LastOffset + 1;

    /// <summary>Timestamp of the first record (ms since the Unix epoch).</summary>
    public long BaseTimestamp => BinaryPrimitives.ReadInt64BigEndian(_bytes.Slice(L.BaseTimestampOffset));

    /// <summary>Largest record timestamp.</summary>
    public long MaxTimestamp => BinaryPrimitives.ReadInt64BigEndian(_bytes.Slice(L.MaxTimestampOffset));

    /// <summary>Producer id, or -1.</summary>
    public long ProducerId => BinaryPrimitives.ReadInt64BigEndian(_bytes.Slice(L.ProducerIdOffset));

    /// <summary>Producer epoch, or -1.</summary>
    public short ProducerEpoch => BinaryPrimitives.ReadInt16BigEndian(_bytes.Slice(L.ProducerEpochOffset));

    /// <summary>Sequence number of the first record, or -1.</summary>
    public int BaseSequence => BinaryPrimitives.ReadInt32BigEndian(_bytes.Slice(L.BaseSequenceOffset));

    /// <summary>Number of records in the batch.</summary>
    public int RecordCount => BinaryPrimitives.ReadInt32BigEndian(_bytes.Slice(L.RecordsCountOffset));

    /// <summary>True when the batch belongs to a transaction.</summary>
    public bool IsTransactional => (Attributes & L.TransactionalFlag) != 0;

    /// <summary>True for a control batch (COMMIT/ABORT marker); readers never hand these to users.</summary>
    public bool IsControl => (Attributes & L.ControlFlag) != 0;

    /// <summary>Compression codec id (TxLog only reads 0, none).</summary>
    public int CompressionCodec => Attributes & L.CompressionMask;

    /// <summary>Enumerates the records; throws <see cref="CorruptRecordException"/> on malformed records.</summary>
    public RecordEnumerator GetEnumerator() => new(_bytes, BaseOffset, BaseTimestamp, RecordCount, CompressionCodec);

    /// <summary>
    /// Checks whether <paramref name="data"/> starts with a complete, valid batch, without reading past
    /// the stated length. Returns its size in <paramref name="batchSize"/> when the header is readable.
    /// </summary>
    /// <param name="data">Bytes starting at a batch boundary.</param>
    /// <param name="maxBatchSize">Largest batch size accepted (guards against absurd lengths).</param>
    /// <param name="batchSize">Size of the batch including its 12-byte log overhead, or 0 when unknown.</param>
    public static BatchCheck Check(ReadOnlySpan<byte> data, int maxBatchSize, out int batchSize)
    {
        batchSize = 0;
        if (data.Length < L.LogOverhead)
        {
            return BatchCheck.Truncated;
        }

        int length = BinaryPrimitives.ReadInt32BigEndian(data.Slice(L.LengthOffset));
        if (length < L.MinBatchLength || length > maxBatchSize - L.LogOverhead)
        {
            return BatchCheck.BadLength;
        }

        if (data.Length <= L.MagicOffset)
        {
            return BatchCheck.Truncated;
        }

        if (data[L.MagicOffset] != L.CurrentMagic)
        {
            return BatchCheck.BadMagic;
        }

        batchSize = length + L.LogOverhead;
        if (data.Length < batchSize)
        {
            return BatchCheck.Truncated;
        }

        uint stored = BinaryPrimitives.ReadUInt32BigEndian(data.Slice(L.CrcOffset));
        uint actual = Crc32C.Compute(data.Slice(L.AttributesOffset, batchSize - L.AttributesOffset));
        return stored == actual ? BatchCheck.Valid : BatchCheck.BadCrc;
    }

    /// <summary>
    /// Decodes every record and checks that the count, the offset deltas and the sizes agree with the
    /// header. Throws <see cref="CorruptRecordException"/> otherwise. Used by recovery and verification.
    /// </summary>
    public void ValidateRecords()
    {
        if (LastOffsetDelta != RecordCount - 1 && !(RecordCount == 0 && LastOffsetDelta >= 0))
        {
            throw new CorruptRecordException($"Batch at base offset {BaseOffset}: last offset delta {LastOffsetDelta} does not match record count {RecordCount}.");
        }

        int expected = 0;
        foreach (Record record in this)
        {
            if (record.Offset - BaseOffset != expected)
            {
                throw new CorruptRecordException($"Batch at base offset {BaseOffset}: record {expected} has offset delta {record.Offset - BaseOffset}.");
            }

            foreach (RecordHeaderView _ in record.Headers)
            {
                // Enumerating validates header lengths.
            }

            expected++;
        }
    }
}

/// <summary>A decoded record: views into the batch's bytes, valid as long as they are.</summary>
public readonly ref struct Record
{
    internal Record(long offset, long timestamp, ReadOnlySpan<byte> key, bool hasKey, ReadOnlySpan<byte> value, bool hasValue, int headerCount, ReadOnlySpan<byte> headerBytes)
    {
        Offset = offset;
        Timestamp = timestamp;
        Key = key;
        HasKey = hasKey;
        Value = value;
        HasValue = hasValue;
        HeaderCount = headerCount;
        HeaderBytes = headerBytes;
    }

    /// <summary>The record's offset in its partition.</summary>
    public long Offset { get; }

    /// <summary>Create time in ms since the Unix epoch.</summary>
    public long Timestamp { get; }

    /// <summary>The key bytes (empty when <see cref="HasKey"/> is false).</summary>
    public ReadOnlySpan<byte> Key { get; }

    /// <summary>False for a null key.</summary>
    public bool HasKey { get; }

    /// <summary>The value bytes (empty when <see cref="HasValue"/> is false).</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>False for a null value.</summary>
    public bool HasValue { get; }

    /// <summary>Number of headers.</summary>
    public int HeaderCount { get; }

    internal ReadOnlySpan<byte> HeaderBytes { get; }

    /// <summary>Enumerates the headers.</summary>
    public RecordHeaderEnumerator Headers => new(HeaderBytes, HeaderCount);
}

/// <summary>A decoded header: views into the batch's bytes.</summary>
public readonly ref struct RecordHeaderView
{
    internal RecordHeaderView(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, bool hasValue)
    {
        Key = key;
        Value = value;
        HasValue = hasValue;
    }

    /// <summary>UTF-8 bytes of the key.</summary>
    public ReadOnlySpan<byte> Key { get; }

    /// <summary>The value bytes (empty when <see cref="HasValue"/> is false).</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>False for a null value.</summary>
    public bool HasValue { get; }
}

/// <summary>Enumerates the records of a batch, validating as it goes.</summary>
public ref struct RecordEnumerator
{
    private readonly ReadOnlySpan<byte> _batch;
    private readonly long _baseOffset;
    private readonly long _baseTimestamp;
    private readonly int _count;
    private int _position;
    private int _index;
    private Record _current;

    internal RecordEnumerator(ReadOnlySpan<byte> batch, long baseOffset, long baseTimestamp, int count, int codec)
    {
        if (codec != 0)
        {
            throw new CorruptRecordException($"Batch at base offset {baseOffset} uses compression codec {codec}; TxLog reads uncompressed batches only.");
        }

        if (count < 0)
        {
            throw new CorruptRecordException($"Batch at base offset {baseOffset} has a negative record count {count}.");
        }

        int declaredEnd = BinaryPrimitives.ReadInt32BigEndian(batch.Slice(L.LengthOffset)) + L.LogOverhead;
        if (declaredEnd < L.HeaderSize || declaredEnd > batch.Length)
        {
            throw new CorruptRecordException($"Batch at base offset {baseOffset} declares {declaredEnd} bytes but {batch.Length} are available.");
        }

        _batch = batch.Slice(0, declaredEnd);
        _baseOffset = baseOffset;
        _baseTimestamp = baseTimestamp;
        _count = count;
        _position = L.RecordsOffset;
        _index = 0;
        _current = default;
    }

    /// <summary>The current record.</summary>
    public readonly Record Current => _current;

    /// <summary>Decodes the next record.</summary>
    public bool MoveNext()
    {
        if (_index >= _count)
        {
            RecordDecoder.CheckEnd(_batch, _position, _count, _baseOffset);
            return false;
        }

        RecordDecoder.Decode(_batch, ref _position, _index, _baseOffset, _baseTimestamp, out _current);
        _index++;
        return true;
    }
}

/// <summary>
/// Decodes records one at a time from a batch's bytes, checking every length against what remains.
/// Shared by <see cref="RecordEnumerator"/> and readers that keep their place across calls.
/// </summary>
internal static class RecordDecoder
{
    /// <summary>Throws when bytes follow the last record.</summary>
    public static void CheckEnd(ReadOnlySpan<byte> batch, int position, int count, long baseOffset)
    {
        if (position != batch.Length)
        {
            throw new CorruptRecordException($"Batch at base offset {baseOffset}: {batch.Length - position} bytes follow the last of {count} records.");
        }
    }

    /// <summary>Decodes the record at <paramref name="position"/> and advances it.</summary>
    public static void Decode(ReadOnlySpan<byte> batch, scoped ref int position, int index, long baseOffset, long baseTimestamp, out Record record)
    {
        ReadOnlySpan<byte> rest = batch.Slice(position);
        int n = Varint.TryReadInt32(rest, out int length);
        if (n == 0 || length < 1 || length > rest.Length - n)
        {
            throw Corrupt(baseOffset, index, "an invalid length");
        }

        ReadOnlySpan<byte> body = rest.Slice(n, length);
        position += n + length;
        int p = 1; // record attributes, unused in v2
        n = Varint.TryReadInt64(body.Slice(p), out long timestampDelta);
        if (n == 0)
        {
            throw Corrupt(baseOffset, index, "a bad timestamp delta");
        }

        p += n;
        n = Varint.TryReadInt32(body.Slice(p), out int offsetDelta);
        if (n == 0 || offsetDelta < 0)
        {
            throw Corrupt(baseOffset, index, "a bad offset delta");
        }

        p += n;
        ReadOnlySpan<byte> key = ReadBytes(body, ref p, out bool hasKey, baseOffset, index, "key");
        ReadOnlySpan<byte> value = ReadBytes(body, ref p, out bool hasValue, baseOffset, index, "value");
        n = Varint.TryReadInt32(body.Slice(p), out int headerCount);
        if (n == 0 || headerCount < 0 || headerCount > body.Length)
        {
            throw Corrupt(baseOffset, index, "a bad header count");
        }

        p += n;
        record = new Record(baseOffset + offsetDelta, baseTimestamp + timestampDelta, key, hasKey, value, hasValue, headerCount, body.Slice(p));
    }

    private static ReadOnlySpan<byte> ReadBytes(ReadOnlySpan<byte> body, scoped ref int p, out bool present, long baseOffset, int index, string what)
    {
        int n = Varint.TryReadInt32(body.Slice(p), out int length);
        if (n == 0 || length < -1 || length > body.Length - p - n)
        {
            throw Corrupt(baseOffset, index, $"a bad {what} length");
        }

        p += n;
        present = length >= 0;
        if (length <= 0)
        {
            return default;
        }

        ReadOnlySpan<byte> bytes = body.Slice(p, length);
        p += length;
        return bytes;
    }

    private static CorruptRecordException Corrupt(long baseOffset, int index, string what) =>
        new($"Batch at base offset {baseOffset}: record {index} has {what}.");
}

/// <summary>Enumerates the headers of a record, validating lengths.</summary>
public ref struct RecordHeaderEnumerator
{
    private readonly ReadOnlySpan<byte> _bytes;
    private readonly int _count;
    private int _position;
    private int _index;
    private RecordHeaderView _current;

    internal RecordHeaderEnumerator(ReadOnlySpan<byte> bytes, int count)
    {
        _bytes = bytes;
        _count = count;
        _position = 0;
        _index = 0;
        _current = default;
    }

    /// <summary>Returns this enumerator (for foreach).</summary>
    public readonly RecordHeaderEnumerator GetEnumerator() => this;

    /// <summary>The current header.</summary>
    public readonly RecordHeaderView Current => _current;

    /// <summary>Decodes the next header.</summary>
    public bool MoveNext()
    {
        if (_index >= _count)
        {
            if (_position != _bytes.Length)
            {
                throw new CorruptRecordException($"{_bytes.Length - _position} bytes follow the last header of a record.");
            }

            return false;
        }

        ReadOnlySpan<byte> rest = _bytes.Slice(_position);
        int n = Varint.TryReadInt32(rest, out int keyLength);
        if (n == 0 || keyLength < 0 || keyLength > rest.Length - n)
        {
            throw new CorruptRecordException($"Header {_index} has a bad key length.");
        }

        ReadOnlySpan<byte> key = rest.Slice(n, keyLength);
        int p = n + keyLength;
        n = Varint.TryReadInt32(rest.Slice(p), out int valueLength);
        if (n == 0 || valueLength < -1 || valueLength > rest.Length - p - n)
        {
            throw new CorruptRecordException($"Header {_index} has a bad value length.");
        }

        p += n;
        ReadOnlySpan<byte> value = valueLength > 0 ? rest.Slice(p, valueLength) : default;
        p += Math.Max(valueLength, 0);
        _current = new RecordHeaderView(key, value, valueLength >= 0);
        _position += p;
        _index++;
        return true;
    }
}
