using System.Collections.Concurrent;

namespace TxLog.Mvcc;

/// <summary>
/// The byte-level core of a transactional map: rows by key. Point lookups go through a concurrent
/// hash map (lock-free); key order lives in a sorted set guarded by a reader-writer lock that is
/// held only to add or remove a key or to copy out a range (never while user code runs), so reads
/// never wait for row locks or for other readers. Thread-safe.
/// </summary>
internal sealed class MapCore
{
    private readonly ConcurrentDictionary<byte[], Row> _byKey = new(KeyComparer.Instance);
    private readonly SortedSet<Row> _ordered = new(KeyComparer.Instance);
    private readonly ReaderWriterLockSlim _orderLock = new();

    public MapCore(string name)
    {
        Name = name;
    }

    public string Name { get; }

    /// <summary>Number of rows (live or not yet collected).</summary>
    public int RowCount => _byKey.Count;

    public Row? Find(byte[] key) => _byKey.GetValueOrDefault(key);

    public Row GetOrAdd(byte[] key)
    {
        if (_byKey.TryGetValue(key, out Row? row))
        {
            return row;
        }

        _orderLock.EnterWriteLock();
        try
        {
            if (_byKey.TryGetValue(key, out row))
            {
                return row;
            }

            row = new Row(key);
            _ordered.Add(row);
            _byKey[key] = row;
            return row;
        }
        finally
        {
            _orderLock.ExitWriteLock();
        }
    }

    /// <summary>The rows with from ≤ key &lt; to (null bounds are open), in key order, copied out.</summary>
    public List<Row> Range(byte[]? from, byte[]? to)
    {
        var list = new List<Row>();
        _orderLock.EnterReadLock();
        try
        {
            if (_ordered.Count == 0)
            {
                return list;
            }

            IEnumerable<Row> view = _ordered;
            if (from is not null || to is not null)
            {
                Row lower = from is null ? _ordered.Min! : new Row(from);
                Row upper = to is null ? _ordered.Max! : new Row(to);
                if (KeyComparer.Instance.Compare(lower, upper) > 0)
                {
                    return list;
                }

                view = _ordered.GetViewBetween(lower, upper);
            }

            foreach (Row row in view)
            {
                if (to is not null && KeyComparer.Instance.Compare(row.Key, to) >= 0)
                {
                    break;
                }

                list.Add(row);
            }
        }
        finally
        {
            _orderLock.ExitReadLock();
        }

        return list;
    }

    /// <summary>
    /// Removes a row whose only remaining version is a delete no snapshot can see past, and which no
    /// transaction holds. Caller must not hold the row lock; it is taken here after the order lock.
    /// </summary>
    public bool TryRemove(Row row, long oldestSnapshotTs)
    {
        _orderLock.EnterWriteLock();
        try
        {
            lock (row)
            {
                if (row.Owner is not null || row.Removed)
                {
                    return false;
                }

                RowVersion? head = row.Head;
                if (head is not null && (head.Value is not null || head.CommitTs > oldestSnapshotTs))
                {
                    return false;
                }

                row.Removed = true;
                _byKey.TryRemove(row.Key, out _);
                _ordered.Remove(row);
                return true;
            }
        }
        finally
        {
            _orderLock.ExitWriteLock();
        }
    }
}
