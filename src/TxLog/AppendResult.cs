namespace TxLog;

/// <summary>Offsets assigned to an appended batch.</summary>
/// <param name="BaseOffset">Offset of the first record.</param>
/// <param name="LastOffset">Offset of the last record; the records have the dense offsets in between.</param>
public readonly record struct AppendResult(long BaseOffset, long LastOffset)
{
    /// <summary>
    /// True when the batch was a retry of one of the producer's last five batches on this partition:
    /// nothing was written and the offsets are those of the original.
    /// </summary>
    public bool IsDuplicate { get; init; }

    /// <summary>Number of records appended.</summary>
    public int Count => (int)(LastOffset - BaseOffset + 1);
}
