using System.Buffers.Binary;
using System.Text;
using TxLog.Records;

namespace TxLog.CrashChild;

/// <summary>
/// The records the <c>append</c> mode writes, and their check. Every byte of a record is a function
/// of (run, writer, sequence), so a checker can tell an intact record from a damaged or misplaced one
/// without being told what was written:
/// <code>
/// Key    => "w" writer (UTF-8 decimal)
/// Value  => Run int32, Writer int32, Sequence int64, Payload (PayloadLength bytes, byte i = f(run, writer, seq, i))
/// Header => "seq" = Sequence int64
/// </code>
/// Payload lengths vary from 1 byte to a few KiB so that some batches span pages (torn writes).
/// </summary>
public static class CrashRecord
{
    /// <summary>Bytes of the fixed part of a value.</summary>
    public const int ValueHeaderSize = 16;

    /// <summary>The header key.</summary>
    public const string HeaderKey = "seq";

    /// <summary>Payload length of a record: mostly small, every 37th sequence a few KiB.</summary>
    public static int PayloadLength(int writer, long sequence) =>
        sequence % 37 == 36 ? 3000 + (int)(sequence % 5) * 700 : 1 + (int)((sequence * 7 + writer * 13) % 200);

    /// <summary>The key of a record of <paramref name="writer"/>.</summary>
    public static byte[] Key(int writer) => Encoding.UTF8.GetBytes("w" + writer.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The value of a record.</summary>
    public static byte[] Value(int run, int writer, long sequence)
    {
        byte[] value = new byte[ValueHeaderSize + PayloadLength(writer, sequence)];
        BinaryPrimitives.WriteInt32BigEndian(value, run);
        BinaryPrimitives.WriteInt32BigEndian(value.AsSpan(4), writer);
        BinaryPrimitives.WriteInt64BigEndian(value.AsSpan(8), sequence);
        for (int i = ValueHeaderSize; i < value.Length; i++)
        {
            value[i] = PayloadByte(run, writer, sequence, i);
        }

        return value;
    }

    /// <summary>The value of the "seq" header.</summary>
    public static byte[] HeaderValue(long sequence)
    {
        byte[] value = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(value, sequence);
        return value;
    }

    /// <summary>The message appended for (run, writer, sequence).</summary>
    public static Message Create(int run, int writer, long sequence) =>
        new(Key(writer), Value(run, writer, sequence))
        {
            Headers = [new RecordHeader(HeaderKey, HeaderValue(sequence))],
        };

    /// <summary>
    /// Decodes the identity of a record from its value and checks that key, value and header are
    /// exactly what <see cref="Create"/> makes for it. Returns false (with a reason) otherwise.
    /// </summary>
    public static bool TryCheck(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, string? headerKey, ReadOnlySpan<byte> headerValue,
        out int run, out int writer, out long sequence, out string? problem)
    {
        run = writer = 0;
        sequence = 0;
        if (value.Length < ValueHeaderSize)
        {
            problem = $"value of {value.Length} bytes is shorter than {ValueHeaderSize}";
            return false;
        }

        run = BinaryPrimitives.ReadInt32BigEndian(value);
        writer = BinaryPrimitives.ReadInt32BigEndian(value.Slice(4));
        sequence = BinaryPrimitives.ReadInt64BigEndian(value.Slice(8));
        if (writer < 0 || sequence < 0)
        {
            problem = $"impossible identity run {run} writer {writer} seq {sequence}";
            return false;
        }

        if (!value.SequenceEqual(Value(run, writer, sequence)))
        {
            problem = $"value of run {run} writer {writer} seq {sequence} is damaged";
            return false;
        }

        if (!key.SequenceEqual(Key(writer)))
        {
            problem = $"key of run {run} writer {writer} seq {sequence} is damaged";
            return false;
        }

        if (headerKey != HeaderKey || !headerValue.SequenceEqual(HeaderValue(sequence)))
        {
            problem = $"header of run {run} writer {writer} seq {sequence} is damaged";
            return false;
        }

        problem = null;
        return true;
    }

    private static byte PayloadByte(int run, int writer, long sequence, int index) =>
        (byte)(run * 131 + writer * 31 + sequence * 7 + index * 3);
}
