namespace TxLog.Records;

/// <summary>
/// Zig-zag variable-length integers as used inside Kafka records (protobuf's sint32/sint64 encoding):
/// the value is zig-zag mapped to an unsigned number, then written 7 bits per byte, low bits first,
/// with the high bit of each byte set when more bytes follow. An int takes at most 5 bytes, a long 10.
/// Thread-safe: pure functions.
/// </summary>
internal static class Varint
{
    /// <summary>Maximum encoded size of a 32-bit varint.</summary>
    public const int MaxInt32Length = 5;

    /// <summary>Maximum encoded size of a 64-bit varlong.</summary>
    public const int MaxInt64Length = 10;

    /// <summary>Encoded size of <paramref name="value"/> as a zig-zag varint.</summary>
    public static int SizeOf(int value) => SizeOfUnsigned((uint)((value << 1) ^ (value >> 31)));

    /// <summary>Encoded size of <paramref name="value"/> as a zig-zag varlong.</summary>
    public static int SizeOf(long value) => SizeOfUnsigned((ulong)((value << 1) ^ (value >> 63)));

    private static int SizeOfUnsigned(uint v)
    {
        int size = 1;
        while (v >= 0x80)
        {
            v >>= 7;
            size++;
        }

        return size;
    }

    private static int SizeOfUnsigned(ulong v)
    {
        int size = 1;
        while (v >= 0x80)
        {
            v >>= 7;
            size++;
        }

        return size;
    }

    /// <summary>Writes a zig-zag varint; the destination must have room (see <see cref="SizeOf(int)"/>).</summary>
    /// <returns>Bytes written.</returns>
    public static int Write(Span<byte> destination, int value)
    {
        uint v = (uint)((value << 1) ^ (value >> 31));
        int i = 0;
        while (v >= 0x80)
        {
            destination[i++] = (byte)(v | 0x80);
            v >>= 7;
        }

        destination[i++] = (byte)v;
        return i;
    }

    /// <summary>Writes a zig-zag varlong; the destination must have room (see <see cref="SizeOf(long)"/>).</summary>
    /// <returns>Bytes written.</returns>
    public static int Write(Span<byte> destination, long value)
    {
        ulong v = (ulong)((value << 1) ^ (value >> 63));
        int i = 0;
        while (v >= 0x80)
        {
            destination[i++] = (byte)(v | 0x80);
            v >>= 7;
        }

        destination[i++] = (byte)v;
        return i;
    }

    /// <summary>
    /// Reads a zig-zag varint. Returns the number of bytes consumed, or 0 when the input ends before
    /// the varint does or the varint is longer than 5 bytes (malformed).
    /// </summary>
    public static int TryReadInt32(ReadOnlySpan<byte> source, out int value)
    {
        uint result = 0;
        int shift = 0;
        for (int i = 0; i < source.Length && i < MaxInt32Length; i++)
        {
            byte b = source[i];
            result |= (uint)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                value = (int)(result >> 1) ^ -(int)(result & 1);
                return i + 1;
            }

            shift += 7;
        }

        value = 0;
        return 0;
    }

    /// <summary>
    /// Reads a zig-zag varlong. Returns the number of bytes consumed, or 0 when the input ends before
    /// the varlong does or the varlong is longer than 10 bytes (malformed).
    /// </summary>
    public static int TryReadInt64(ReadOnlySpan<byte> source, out long value)
    {
        ulong result = 0;
        int shift = 0;
        for (int i = 0; i < source.Length && i < MaxInt64Length; i++)
        {
            byte b = source[i];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                value = (long)(result >> 1) ^ -(long)(result & 1);
                return i + 1;
            }

            shift += 7;
        }

        value = 0;
        return 0;
    }
}
