using System.Buffers.Binary;
using System.Text;

namespace TxLog.Mvcc;

/// <summary>
/// Turns keys or values into bytes and back. For keys the byte order must match the wanted key order
/// (maps are ordered by unsigned lexicographic byte comparison).
/// </summary>
public interface ISerializer<T>
{
    /// <summary>Encodes a value.</summary>
    byte[] Serialize(T value);

    /// <summary>Decodes a value.</summary>
    T Deserialize(ReadOnlySpan<byte> bytes);
}

/// <summary>Built-in serializers; the integer ones preserve numeric order as byte order.</summary>
public static class Serializers
{
    /// <summary>Raw bytes (copied).</summary>
    public static ISerializer<byte[]> Bytes { get; } = new BytesSerializer();

    /// <summary>UTF-8 strings (byte order = ordinal code point order); a string with a lone surrogate throws <see cref="ArgumentException"/>.</summary>
    public static ISerializer<string> String { get; } = new StringSerializer();

    /// <summary>32-bit integers, big-endian with the sign bit flipped (so -1 sorts before 0).</summary>
    public static ISerializer<int> Int32 { get; } = new Int32Serializer();

    /// <summary>64-bit integers, big-endian with the sign bit flipped.</summary>
    public static ISerializer<long> Int64 { get; } = new Int64Serializer();

    private sealed class BytesSerializer : ISerializer<byte[]>
    {
        public byte[] Serialize(byte[] value) => (byte[])value.Clone();

        public byte[] Deserialize(ReadOnlySpan<byte> bytes) => bytes.ToArray();
    }

    private sealed class StringSerializer : ISerializer<string>
    {
        // Strict: the lenient encoder wrote a lone surrogate as U+FFFD, so distinct keys ("a\uD800",
        // "a\uD801") became one row and values came back changed.
        private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        public byte[] Serialize(string value)
        {
            try
            {
                return Strict.GetBytes(value);
            }
            catch (EncoderFallbackException e)
            {
                throw new ArgumentException($"The string is not valid UTF-16 (a lone surrogate at index {e.Index}); it cannot be stored without changing it.", nameof(value), e);
            }
        }

        public string Deserialize(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);
    }

    private sealed class Int32Serializer : ISerializer<int>
    {
        public byte[] Serialize(int value)
        {
            byte[] bytes = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)value ^ 0x8000_0000u);
            return bytes;
        }

        public int Deserialize(ReadOnlySpan<byte> bytes) => (int)(BinaryPrimitives.ReadUInt32BigEndian(bytes) ^ 0x8000_0000u);
    }

    private sealed class Int64Serializer : ISerializer<long>
    {
        public byte[] Serialize(long value)
        {
            byte[] bytes = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)value ^ 0x8000_0000_0000_0000ul);
            return bytes;
        }

        public long Deserialize(ReadOnlySpan<byte> bytes) => (long)(BinaryPrimitives.ReadUInt64BigEndian(bytes) ^ 0x8000_0000_0000_0000ul);
    }
}
