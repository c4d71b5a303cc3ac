namespace TxLog.Tests.Records;

/// <summary>
/// A deliberately naive bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78), written from the
/// definition so that tests do not check the library's CRC against itself.
/// </summary>
internal static class ReferenceCrc32C
{
    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }

        return ~crc;
    }
}
