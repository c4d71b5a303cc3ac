namespace TxLog.Mvcc;

/// <summary>
/// An ordered map whose reads and writes happen inside an <see cref="MvccTransaction"/>: reads
/// follow the transaction's isolation level (and always see the transaction's own writes); writes
/// take row locks and are undone on rollback. Keys are ordered by their serialized bytes.
/// Thread-safe (each transaction is used by one thread at a time). Every call takes a transaction of
/// the engine that opened the map (<see cref="ArgumentException"/> otherwise).
/// </summary>
/// <typeparam name="TKey">Key type.</typeparam>
/// <typeparam name="TValue">Value type.</typeparam>
public sealed class TransactionalMap<TKey, TValue>
    where TKey : notnull
{
    private readonly TransactionEngine _engine;
    private readonly MapCore _core;
    private readonly ISerializer<TKey> _keys;
    private readonly ISerializer<TValue> _values;

    internal TransactionalMap(TransactionEngine engine, MapCore core, ISerializer<TKey> keys, ISerializer<TValue> values)
    {
        _engine = engine;
        _core = core;
        _keys = keys;
        _values = values;
    }

    /// <summary>The map name.</summary>
    public string Name => _core.Name;

    // A transaction of another engine (another store) would lock and version this map's rows with its
    // own timestamps and write their redo into its own store: readers here see foreign versions, and the
    // other store's maps gain this map at its next open.
    private void CheckTransaction(MvccTransaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        if (!ReferenceEquals(transaction.Engine, _engine))
        {
            throw new ArgumentException($"The transaction belongs to another transaction engine (another store) than map '{Name}'; use a transaction of the engine that opened the map.", nameof(transaction));
        }
    }

    private byte[] Key(TKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return _keys.Serialize(key) ?? throw new InvalidOperationException($"The key serializer of map '{Name}' returned null.");
    }

    private byte[] Value(TValue value)
    {
        if (value is null)
        {
            throw new ArgumentNullException(nameof(value), "Values cannot be null; use Remove to delete a key.");
        }

        // A null here would reach the engine as a delete: the put would silently remove the key.
        return _values.Serialize(value) ?? throw new InvalidOperationException($"The value serializer of map '{Name}' returned null for a value; a serializer must return an array (empty for an empty value).");
    }

    /// <summary>Reads a key; false when the transaction sees no value.</summary>
    public bool TryGet(MvccTransaction transaction, TKey key, out TValue value)
    {
        CheckTransaction(transaction);
        byte[]? bytes = _engine.Read(transaction, _core, Key(key));
        value = bytes is null ? default! : _values.Deserialize(bytes);
        return bytes is not null;
    }

    /// <summary>Reads a key; <paramref name="defaultValue"/> when the transaction sees no value.</summary>
    public TValue Get(MvccTransaction transaction, TKey key, TValue defaultValue = default!) =>
        TryGet(transaction, key, out TValue value) ? value : defaultValue;

    /// <summary>True when the transaction sees a value for the key.</summary>
    public bool ContainsKey(MvccTransaction transaction, TKey key) => TryGet(transaction, key, out _);

    /// <summary>Writes a value (takes the row lock; waits up to the lock timeout).</summary>
    /// <exception cref="WriteConflictException">The lock timed out, or (RR/Serializable) the row changed after the snapshot.</exception>
    /// <exception cref="DeadlockException">This transaction was the victim of a lock cycle.</exception>
    public void Put(MvccTransaction transaction, TKey key, TValue value)
    {
        CheckTransaction(transaction);
        _engine.Write(transaction, _core, Key(key), Value(value));
    }

    /// <summary>Deletes a key; returns whether the transaction saw a value before.</summary>
    public bool Remove(MvccTransaction transaction, TKey key)
    {
        CheckTransaction(transaction);
        byte[] k = Key(key);
        bool existed = _engine.Read(transaction, _core, k) is not null;
        _engine.Write(transaction, _core, k, null);
        return existed;
    }

    /// <summary>
    /// Compare-and-set: writes <paramref name="newValue"/> only if the value the transaction sees
    /// (under the row lock) equals <paramref name="expectedValue"/> byte for byte.
    /// </summary>
    public bool TryUpdate(MvccTransaction transaction, TKey key, TValue newValue, TValue expectedValue)
    {
        CheckTransaction(transaction);
        return _engine.Write(transaction, _core, Key(key), Value(newValue), compare: true, expected: Value(expectedValue));
    }

    /// <summary>The entries the transaction sees, in key order.</summary>
    public IReadOnlyList<KeyValuePair<TKey, TValue>> Scan(MvccTransaction transaction) => ScanBytes(transaction, null, null);

    /// <summary>
    /// The entries with <paramref name="fromInclusive"/> ≤ key &lt; <paramref name="toExclusive"/> that
    /// the transaction sees, in key order. Under Serializable the range is validated at commit
    /// (a phantom fails the commit).
    /// </summary>
    public IReadOnlyList<KeyValuePair<TKey, TValue>> Range(MvccTransaction transaction, TKey fromInclusive, TKey toExclusive) =>
        ScanBytes(transaction, Key(fromInclusive), Key(toExclusive));

    /// <summary>The entries with key ≥ <paramref name="fromInclusive"/>, in key order.</summary>
    public IReadOnlyList<KeyValuePair<TKey, TValue>> RangeFrom(MvccTransaction transaction, TKey fromInclusive) =>
        ScanBytes(transaction, Key(fromInclusive), null);

    /// <summary>Number of entries the transaction sees.</summary>
    public long Count(MvccTransaction transaction)
    {
        CheckTransaction(transaction);
        return _engine.Scan(transaction, _core, null, null).Count;
    }

    /// <summary>Number of entries the transaction sees with <paramref name="fromInclusive"/> ≤ key &lt; <paramref name="toExclusive"/>.</summary>
    public long Count(MvccTransaction transaction, TKey fromInclusive, TKey toExclusive)
    {
        CheckTransaction(transaction);
        return _engine.Scan(transaction, _core, Key(fromInclusive), Key(toExclusive)).Count;
    }

    private IReadOnlyList<KeyValuePair<TKey, TValue>> ScanBytes(MvccTransaction transaction, byte[]? from, byte[]? to)
    {
        CheckTransaction(transaction);
        List<KeyValuePair<byte[], byte[]>> raw = _engine.Scan(transaction, _core, from, to);
        var result = new List<KeyValuePair<TKey, TValue>>(raw.Count);
        foreach (KeyValuePair<byte[], byte[]> pair in raw)
        {
            result.Add(new KeyValuePair<TKey, TValue>(_keys.Deserialize(pair.Key), _values.Deserialize(pair.Value)));
        }

        return result;
    }
}
