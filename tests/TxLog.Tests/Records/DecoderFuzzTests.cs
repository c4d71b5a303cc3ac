using System.Buffers.Binary;
using TxLog.Records;

namespace TxLog.Tests.Records;

/// <summary>Random and mutated bytes must produce a typed exception or a clean result, never a crash.</summary>
public class DecoderFuzzTests
{
    [Test]
    public void Random_bytes_never_escape_as_anything_but_CorruptRecordException([Values(1, 2, 3)] int seed)
    {
        var random = new Random(seed);
        for (int iteration = 0; iteration < 20_000; iteration++)
        {
            byte[] bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (bytes.Length >= 17 && random.Next(2) == 0)
            {
                // Make the header plausible so the record decoder is reached more often.
                BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), bytes.Length - 12);
                bytes[16] = 2;
            }

            DecodeEverything(bytes);
        }
    }

    [Test]
    public void Mutated_valid_batches_are_rejected_or_decoded_safely([Values(5, 6)] int seed)
    {
        var random = new Random(seed);
        using var builder = new RecordBatchBuilder();
        for (int iteration = 0; iteration < 5_000; iteration++)
        {
            builder.Reset(0, -1, -1, -1);
            int records = random.Next(1, 5);
            for (int r = 0; r < records; r++)
            {
                byte[] value = new byte[random.Next(0, 40)];
                random.NextBytes(value);
                builder.Add(1000 + r, "key"u8, random.Next(2) == 0, value, true, r % 2 == 0 ? null : [new RecordHeader("h", value)]);
            }

            byte[] bytes = builder.Seal(0).ToArray();
            int flips = random.Next(1, 4);
            for (int f = 0; f < flips; f++)
            {
                bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
            }

            // Recompute the CRC half of the time so the record decoder sees the damage.
            if (random.Next(2) == 0)
            {
                BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(17), Crc32C.Compute(bytes.AsSpan(21)));
            }

            DecodeEverything(bytes);
        }
    }

    private static void DecodeEverything(byte[] bytes)
    {
        try
        {
            BatchCheck check = RecordBatch.Check(bytes, 1 << 20, out int size);
            if (bytes.Length < RecordBatchLayout.HeaderSize)
            {
                return;
            }

            var batch = new RecordBatch(check == BatchCheck.Valid ? bytes.AsSpan(0, size) : bytes);
            long sum = 0;
            foreach (Record record in batch)
            {
                sum += record.Key.Length + record.Value.Length;
                foreach (RecordHeaderView header in record.Headers)
                {
                    sum += header.Key.Length + header.Value.Length;
                }
            }

            Assert.That(sum, Is.LessThanOrEqualTo(bytes.Length));
        }
        catch (CorruptRecordException)
        {
            // The expected outcome for bad bytes.
        }
    }
}
