using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using L = TxLog.Records.RecordBatchLayout;

namespace TxLog.Records;

/// <summary>
/// Encodes one RecordBatch v2 into a pooled, reusable buffer (see <see cref="RecordBatchLayout"/> for
/// the grammar). Usage: <see cref="Reset"/>, any number of <see cref="Add(in Message, long)"/>, then
/// <see cref="Seal"/>, which fills the header and the CRC. The base offset is left for the log to
/// patch at append time: it is outside the CRC, so a batch can be built and checksummed before the
/// log's lock is taken. Not thread-safe: one builder per writer. Allocation-free after warm-up.
/// </summary>
internal sealed class RecordBatchBuilder : IDisposable
{
    private const int InitialCapacity = 4096;

    private byte[] _buffer;          // pooled; the batch is _buffer[0.._length)
    private int _length;             // bytes written so far, header included
    private int _count;              // records added since Reset
    private long _baseTimestamp;     // first record's timestamp: record timestamps are deltas from it
    private long _maxTimestamp;
    private short _attributes;
    private bool _sealed;

    /// <summary>Creates a builder with a pooled buffer.</summary>
    public RecordBatchBuilder()
    {
        _buffer = ArrayPool<byte>.Shared.Rent(InitialCapacity);
        Reset(0, L.NoProducerId, L.NoProducerEpoch, L.NoSequence);
    }

    /// <summary>Number of records added since the last <see cref="Reset"/>.</summary>
    public int Count => _count;

    /// <summary>Encoded size of the batch so far, header included.</summary>
    public int Length => _length;

    /// <summary>The largest timestamp added so far.</summary>
    public long MaxTimestamp => _maxTimestamp;

    /// <summary>The first record's timestamp (the batch's base timestamp).</summary>
    public long BaseTimestamp => _baseTimestamp;

    /// <summary>Starts a new batch with the given attributes and producer fields.</summary>
    public void Reset(short attributes, long producerId, short producerEpoch, int baseSequence)
    {
        Debug.Assert((attributes & L.CompressionMask) == 0, "TxLog writes uncompressed batches only");
        _attributes = attributes;
        _length = L.HeaderSize;
        _count = 0;
        _baseTimestamp = -1;
        _maxTimestamp = -1;
        _sealed = false;
        Span<byte> h = _buffer.AsSpan(0, L.HeaderSize);
        h.Clear();
        BinaryPrimitives.WriteInt64BigEndian(h.Slice(L.ProducerIdOffset), producerId);
        BinaryPrimitives.WriteInt16BigEndian(h.Slice(L.ProducerEpochOffset), producerEpoch);
        BinaryPrimitives.WriteInt32BigEndian(h.Slice(L.BaseSequenceOffset), baseSequence);
    }

    /// <summary>Appends a record built from a <see cref="Message"/>.</summary>
    /// <param name="message">The record.</param>
    /// <param name="now">Timestamp to use when the message has none (ms since the Unix epoch).</param>
    public void Add(in Message message, long now)
    {
        ReadOnlySpan<byte> key = message.Key.HasValue ? message.Key.GetValueOrDefault().Span : default;
        ReadOnlySpan<byte> value = message.Value.HasValue ? message.Value.GetValueOrDefault().Span : default;
        Add(message.Timestamp ?? now, key, message.Key.HasValue, value, message.Value.HasValue, message.Headers);
    }

    /// <summary>Appends a record from spans; <paramref name="hasKey"/>/<paramref name="hasValue"/> false mean null.</summary>
    public void Add(long timestamp, ReadOnlySpan<byte> key, bool hasKey, ReadOnlySpan<byte> value, bool hasValue, IReadOnlyList<RecordHeader>? headers)
    {
        Debug.Assert(!_sealed, "Add after Seal without Reset");

        // Message refuses a negative timestamp; the store's clock (null, control records, redo) may still
        // be before the Unix epoch. A negative timestamp would leave the header's max at -1, disagreeing
        // with its records, so the earliest timestamp a record can have (0) is written instead.
        timestamp = Math.Max(timestamp, 0);
        if (_count == 0)
        {
            _baseTimestamp = timestamp;
        }

        if (timestamp > _maxTimestamp)
        {
            _maxTimestamp = timestamp;
        }

        long timestampDelta = timestamp - _baseTimestamp;
        int offsetDelta = _count;
        int keyLength = hasKey ? key.Length : -1;
        int valueLength = hasValue ? value.Length : -1;
        int headerCount = headers?.Count ?? 0;

        // Body size first: the record starts with its own length.
        int bodySize = 1 + Varint.SizeOf(timestampDelta) + Varint.SizeOf(offsetDelta)
            + Varint.SizeOf(keyLength) + Math.Max(keyLength, 0)
            + Varint.SizeOf(valueLength) + Math.Max(valueLength, 0)
            + Varint.SizeOf(headerCount);
        for (int i = 0; i < headerCount; i++)
        {
            RecordHeader header = headers![i];
            if (header.Key is null)
            {
                throw new ArgumentException($"Header {i} has no key (a default RecordHeader); every header needs a key.", nameof(headers));
            }

            int headerKeyLength = Encoding.UTF8.GetByteCount(header.Key);
            int headerValueLength = header.Value.HasValue ? header.Value.GetValueOrDefault().Length : -1;
            bodySize += Varint.SizeOf(headerKeyLength) + headerKeyLength + Varint.SizeOf(headerValueLength) + Math.Max(headerValueLength, 0);
        }

        EnsureCapacity(Varint.SizeOf(bodySize) + bodySize);
        Span<byte> dst = _buffer.AsSpan(_length);
        int p = Varint.Write(dst, bodySize);
        int bodyStart = p;
        dst[p++] = 0; // record attributes: unused in v2
        p += Varint.Write(dst.Slice(p), timestampDelta);
        p += Varint.Write(dst.Slice(p), offsetDelta);
        p += Varint.Write(dst.Slice(p), keyLength);
        if (keyLength > 0)
        {
            key.CopyTo(dst.Slice(p));
            p += keyLength;
        }

        p += Varint.Write(dst.Slice(p), valueLength);
        if (valueLength > 0)
        {
            value.CopyTo(dst.Slice(p));
            p += valueLength;
        }

        p += Varint.Write(dst.Slice(p), headerCount);
        for (int i = 0; i < headerCount; i++)
        {
            RecordHeader header = headers![i];
            int headerKeyLength = Encoding.UTF8.GetByteCount(header.Key);
            p += Varint.Write(dst.Slice(p), headerKeyLength);
            p += Encoding.UTF8.GetBytes(header.Key, dst.Slice(p));
            if (header.Value.HasValue)
            {
                ReadOnlySpan<byte> hv = header.Value.GetValueOrDefault().Span;
                p += Varint.Write(dst.Slice(p), hv.Length);
                hv.CopyTo(dst.Slice(p));
                p += hv.Length;
            }
            else
            {
                p += Varint.Write(dst.Slice(p), -1);
            }
        }

        Debug.Assert(p - bodyStart == bodySize, "record body size mismatch");
        _length += p;
        _count++;
    }

    /// <summary>
    /// Fills the header (base offset as given, length, magic, counts, timestamps) and the CRC, and
    /// returns the finished batch. The batch stays valid until the next <see cref="Reset"/>.
    /// </summary>
    public Memory<byte> Seal(long baseOffset)
    {
        Debug.Assert(_count > 0, "a batch needs at least one record");
        Span<byte> h = _buffer.AsSpan(0, _length);
        BinaryPrimitives.WriteInt64BigEndian(h.Slice(L.BaseOffsetOffset), baseOffset);
        BinaryPrimitives.WriteInt32BigEndian(h.Slice(L.LengthOffset), _length - L.LogOverhead);
        BinaryPrimitives.WriteInt32BigEndian(h.Slice(L.PartitionLeaderEpochOffset), L.NoPartitionLeaderEpoch);
        h[L.MagicOffset] = L.CurrentMagic;
        BinaryPrimitives.WriteInt16BigEndian(h.Slice(L.AttributesOffset), _attributes);
        BinaryPrimitives.WriteInt32BigEndian(h.Slice(L.LastOffsetDeltaOffset), _count - 1);
        BinaryPrimitives.WriteInt64BigEndian(h.Slice(L.BaseTimestampOffset), _baseTimestamp);
        BinaryPrimitives.WriteInt64BigEndian(h.Slice(L.MaxTimestampOffset), _maxTimestamp);
        BinaryPrimitives.WriteInt32BigEndian(h.Slice(L.RecordsCountOffset), _count);
        uint crc = Crc32C.Compute(h.Slice(L.AttributesOffset));
        BinaryPrimitives.WriteUInt32BigEndian(h.Slice(L.CrcOffset), crc);
        _sealed = true;
        return _buffer.AsMemory(0, _length);
    }

    private void EnsureCapacity(int extra)
    {
        if (_length + extra <= _buffer.Length)
        {
            return;
        }

        int newSize = Math.Max(_buffer.Length * 2, _length + extra);
        byte[] bigger = ArrayPool<byte>.Shared.Rent(newSize);
        _buffer.AsSpan(0, _length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    /// <summary>Returns the buffer to the pool.</summary>
    public void Dispose()
    {
        byte[] buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
