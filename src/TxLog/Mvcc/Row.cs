namespace TxLog.Mvcc;

/// <summary>One committed version of a row: its commit timestamp and value (null = deleted), newest first.</summary>
internal sealed class RowVersion(long commitTs, byte[]? value, RowVersion? older)
{
    public long CommitTs { get; } = commitTs;

    /// <summary>The value, or null when this version deletes the row.</summary>
    public byte[]? Value { get; } = value;

    /// <summary>The next older version (cut off by garbage collection).</summary>
    public RowVersion? Older { get; set; } = older;
}

/// <summary>
/// A key of a transactional map: its committed versions (newest first), and the row lock: the
/// transaction that wrote it last and has not finished, with its pending value. All fields are
/// guarded by the row's monitor (lock(row)); it is held only for a few field reads or writes, and
/// writers waiting for the row lock wait on it with <see cref="Monitor.Wait(object, TimeSpan)"/>.
/// </summary>
internal sealed class Row(byte[] key)
{
    public byte[] Key { get; } = key;

    /// <summary>The newest committed version, or null.</summary>
    public RowVersion? Head { get; set; }

    /// <summary>The lock holder, or null.</summary>
    public MvccTransaction? Owner { get; set; }

    /// <summary>The owner's uncommitted value (null = delete); meaningful while <see cref="Owner"/> is set.</summary>
    public byte[]? Pending { get; set; }

    /// <summary>Set when garbage collection removed the row from its map: writers then look it up again.</summary>
    public bool Removed { get; set; }

    /// <summary>The newest version visible at <paramref name="snapshotTs"/>, or null.</summary>
    public RowVersion? VisibleAt(long snapshotTs)
    {
        for (RowVersion? v = Head; v is not null; v = v.Older)
        {
            if (v.CommitTs <= snapshotTs)
            {
                return v;
            }
        }

        return null;
    }

    /// <summary>The newest version a snapshot sees, or null.</summary>
    public RowVersion? VisibleAt(in Snapshot snapshot)
    {
        for (RowVersion? v = Head; v is not null; v = v.Older)
        {
            if (snapshot.Sees(v.CommitTs))
            {
                return v;
            }
        }

        return null;
    }

    /// <summary>Drops versions no snapshot at or after <paramref name="oldestSnapshotTs"/> can see. Caller holds the row lock.</summary>
    public void PruneUnsynchronized(long oldestSnapshotTs)
    {
        RowVersion? keep = VisibleAt(oldestSnapshotTs);
        if (keep is not null)
        {
            keep.Older = null;
        }
    }
}

/// <summary>
/// What a RepeatableRead or Serializable transaction sees: every commit up to <see cref="Max"/> that was
/// installed when it began, i.e. all but those still being installed then (<see cref="InFlight"/>).
/// Excluding only in-flight commits (instead of everything after the oldest of them) keeps snapshots
/// fresh while a slow commit (a unified transaction's coordinator round) is being decided; no commit
/// visible to the snapshot can depend on an excluded one, since it could only have read or overwritten
/// it after its installation.
/// </summary>
internal readonly record struct Snapshot(long Max, long[] InFlight)
{
    /// <summary>True when a version committed at <paramref name="commitTs"/> is visible.</summary>
    public bool Sees(long commitTs) => commitTs <= Max && (InFlight.Length == 0 || Array.BinarySearch(InFlight, commitTs) < 0);

    /// <summary>Versions at or below this are only needed as the newest one (garbage-collection bound).</summary>
    public long GcBound => InFlight.Length == 0 ? Max : Math.Min(Max, InFlight[0] - 1);
}

/// <summary>Byte-wise (unsigned, lexicographic) ordering and equality of keys.</summary>
internal sealed class KeyComparer : IComparer<byte[]>, IEqualityComparer<byte[]>, IComparer<Row>
{
    public static readonly KeyComparer Instance = new();

    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);

    public int Compare(Row? x, Row? y) => x!.Key.AsSpan().SequenceCompareTo(y!.Key);

    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

    public int GetHashCode(byte[] obj)
    {
        var hash = new HashCode();
        hash.AddBytes(obj);
        return hash.ToHashCode();
    }
}
