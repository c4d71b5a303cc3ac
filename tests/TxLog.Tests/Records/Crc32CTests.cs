using System.Text;
using TxLog.Records;

namespace TxLog.Tests.Records;

public class Crc32CTests
{
    [Test]
    public void Check_value_of_123456789_is_the_published_one()
    {
        // The standard check value of CRC-32C (iSCSI, RFC 3720 appendix B.4).
        Assert.That(Crc32C.Compute(Encoding.ASCII.GetBytes("123456789")), Is.EqualTo(0xE3069283u));
    }

    [Test]
    public void Thirty_two_zero_bytes_give_the_rfc3720_value()
    {
        Assert.That(Crc32C.Compute(new byte[32]), Is.EqualTo(0x8A9136AAu));
    }

    [Test]
    public void Matches_a_bitwise_reference_for_every_length_up_to_300([Values(1, 7, 99)] int seed)
    {
        var random = new Random(seed);
        byte[] data = new byte[300];
        random.NextBytes(data);
        for (int length = 0; length <= data.Length; length++)
        {
            Assert.That(Crc32C.Compute(data.AsSpan(0, length)), Is.EqualTo(ReferenceCrc32C.Compute(data.AsSpan(0, length))), $"length {length}");
        }
    }

    [Test]
    public void Append_in_pieces_equals_one_pass()
    {
        byte[] data = Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog, twice over.");
        uint running = 0xFFFFFFFF;
        running = Crc32C.Append(running, data.AsSpan(0, 13));
        running = Crc32C.Append(running, data.AsSpan(13));
        Assert.That(~running, Is.EqualTo(Crc32C.Compute(data)));
    }
}
