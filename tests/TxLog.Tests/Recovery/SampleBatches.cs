using static TxLog.Tests.Recovery.TestLog;

namespace TxLog.Tests.Recovery;

/// <summary>
/// Five small batches of one to three records covering the record grammar: null and empty keys and
/// values, headers with null, empty and non-ASCII parts, timestamps out of order inside a batch.
/// </summary>
internal static class SampleBatches
{
    public const long T0 = 1_700_000_000_000;

    public static readonly TestRecord[][] All =
    [
        [new(Bytes("k0"), Bytes("v0"), T0, ("h", Bytes("x")))],
        [new(null, Bytes("keyless"), T0 + 10), new(Bytes("k2"), null, T0 + 5, ("h1", null), ("ключ", Bytes("")))],
        [new(Bytes("k3"), Bytes(""), T0 + 20), new(Bytes("k4"), Bytes(new string('x', 40)), T0 + 21), new(Bytes(""), Bytes("v5"), T0 + 19, ("a", Bytes("b")), ("c", Bytes("d")))],
        [new(Bytes("k6"), Bytes("v6"), T0 + 30)],
        [new(Bytes("k7"), Bytes("value seven"), T0 + 40, ("trace", Bytes("t7"))), new(null, null, T0 + 41), new(Bytes("k9"), Bytes("v9"), T0 + 39, ("h", null))],
    ];

    /// <summary>A batch to append after recovery.</summary>
    public static readonly TestRecord[] Extra = [new(Bytes("after"), Bytes("recovery"), T0 + 50), new(Bytes("after2"), null, T0 + 51)];

    /// <summary>Flips one bit of a file in place.</summary>
    public static void FlipBit(string path, long position, int bit)
    {
        using FileStream file = new(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = position;
        int b = file.ReadByte();
        file.Position = position;
        file.WriteByte((byte)(b ^ (1 << bit)));
    }

    /// <summary>
    /// The bits to flip at a byte of a batch: all eight in the bytes before the attributes (base
    /// offset, length, leader epoch and magic, which the CRC does not cover, and the CRC itself), one
    /// (varying) in the bytes the CRC covers: CRC-32C catches every single-bit error there, so one bit
    /// per byte tests that the byte is covered.
    /// </summary>
    public static int[] BitsToFlip(int offsetInBatch) =>
        offsetInBatch < global::TxLog.Records.RecordBatchLayout.AttributesOffset ? [0, 1, 2, 3, 4, 5, 6, 7] : [offsetInBatch % 8];
}
