using System.Buffers.Binary;
using System.Numerics;

namespace TxLog.Records;

/// <summary>
/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41), the checksum of Kafka's RecordBatch v2 and of every
/// other checksummed structure TxLog writes. Uses the CPU's crc32 instruction through
/// <see cref="BitOperations.Crc32C(uint, ulong)"/> (software fallback on CPUs without it).
/// Thread-safe: pure functions.
/// </summary>
public static class Crc32C
{
    /// <summary>Computes the standard CRC-32C of <paramref name="data"/> (initial value and final xor 0xFFFFFFFF).</summary>
    /// <param name="data">The bytes to checksum.</param>
    /// <returns>The checksum; "123456789" gives 0xE3069283.</returns>
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(0xFFFF_FFFFu, data);

    /// <summary>
    /// Feeds <paramref name="data"/> into a running, not yet finalised CRC register. Start from
    /// 0xFFFFFFFF and invert the result at the end, or use <see cref="Compute"/>.
    /// </summary>
    /// <param name="crc">The running register.</param>
    /// <param name="data">The next bytes.</param>
    /// <returns>The updated register.</returns>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        // The crc32 instruction consumes a 64-bit operand as 8 bytes in little-endian memory order,
        // so reading little-endian keeps the byte stream order on any host.
        while (data.Length >= 32)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(8)));
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(16)));
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(24)));
            data = data.Slice(32);
        }

        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data.Slice(8);
        }

        for (int i = 0; i < data.Length; i++)
        {
            crc = BitOperations.Crc32C(crc, data[i]);
        }

        return crc;
    }
}
