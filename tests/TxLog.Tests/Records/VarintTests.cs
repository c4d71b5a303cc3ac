using TxLog.Records;

namespace TxLog.Tests.Records;

public class VarintTests
{
    // Zig-zag: 0→0, -1→1, 1→2, -2→3, 63→126, -64→127, 64→128 (two bytes 0x80 0x01).
    [TestCase(0, new byte[] { 0x00 })]
    [TestCase(-1, new byte[] { 0x01 })]
    [TestCase(1, new byte[] { 0x02 })]
    [TestCase(-2, new byte[] { 0x03 })]
    [TestCase(63, new byte[] { 0x7E })]
    [TestCase(-64, new byte[] { 0x7F })]
    [TestCase(64, new byte[] { 0x80, 0x01 })]
    [TestCase(300, new byte[] { 0xD8, 0x04 })]
    [TestCase(int.MaxValue, new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0x0F })]
    [TestCase(int.MinValue, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F })]
    public void Int32_encodes_as_protobuf_sint32(int value, byte[] expected)
    {
        byte[] buffer = new byte[Varint.MaxInt32Length];
        int written = Varint.Write(buffer, value);
        Assert.That(buffer.AsSpan(0, written).ToArray(), Is.EqualTo(expected));
        Assert.That(Varint.SizeOf(value), Is.EqualTo(expected.Length));
        Assert.That(Varint.TryReadInt32(expected, out int decoded), Is.EqualTo(expected.Length));
        Assert.That(decoded, Is.EqualTo(value));
    }

    [TestCase(0L, new byte[] { 0x00 })]
    [TestCase(-1L, new byte[] { 0x01 })]
    [TestCase(10L, new byte[] { 0x14 })]
    [TestCase(long.MaxValue, new byte[] { 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]
    [TestCase(long.MinValue, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01 })]
    public void Int64_encodes_as_protobuf_sint64(long value, byte[] expected)
    {
        byte[] buffer = new byte[Varint.MaxInt64Length];
        int written = Varint.Write(buffer, value);
        Assert.That(buffer.AsSpan(0, written).ToArray(), Is.EqualTo(expected));
        Assert.That(Varint.SizeOf(value), Is.EqualTo(expected.Length));
        Assert.That(Varint.TryReadInt64(expected, out long decoded), Is.EqualTo(expected.Length));
        Assert.That(decoded, Is.EqualTo(value));
    }

    [Test]
    public void Truncated_or_overlong_varints_are_rejected()
    {
        Assert.That(Varint.TryReadInt32([0x80], out _), Is.Zero, "continuation bit with no next byte");
        Assert.That(Varint.TryReadInt32([0x80, 0x80, 0x80, 0x80, 0x80, 0x01], out _), Is.Zero, "six bytes for an int");
        Assert.That(Varint.TryReadInt64([], out _), Is.Zero, "empty input");
    }
}
