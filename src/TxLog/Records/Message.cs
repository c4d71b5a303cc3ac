namespace TxLog.Records;

/// <summary>
/// One header of a record: a UTF-8 key and an optional value, as in Kafka.
/// </summary>
public readonly struct RecordHeader
{
    /// <summary>Creates a header.</summary>
    /// <param name="key">The header key; not null.</param>
    /// <param name="value">The header value, or null for a null value.</param>
    public RecordHeader(string key, ReadOnlyMemory<byte>? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        Key = key;
        Value = value;
    }

    /// <summary>The header key.</summary>
    public string Key { get; }

    /// <summary>The header value; null is distinct from empty.</summary>
    public ReadOnlyMemory<byte>? Value { get; }
}

/// <summary>
/// A record to append: key, value, headers and timestamp. A value type so that appending does not
/// allocate per record; null key and null value are distinct from empty ones (Kafka's tombstones and
/// keyless records).
/// </summary>
public readonly struct Message
{
    /// <summary>Creates a message with a value and no key.</summary>
    /// <param name="value">The value, or null.</param>
    public Message(ReadOnlyMemory<byte>? value)
    {
        Value = value;
    }

    /// <summary>Creates a message with a key and a value.</summary>
    /// <param name="key">The key, or null.</param>
    /// <param name="value">The value, or null.</param>
    public Message(ReadOnlyMemory<byte>? key, ReadOnlyMemory<byte>? value)
    {
        Key = key;
        Value = value;
    }

    /// <summary>The key, or null for a keyless record.</summary>
    public ReadOnlyMemory<byte>? Key { get; init; }

    /// <summary>The value, or null (a tombstone).</summary>
    public ReadOnlyMemory<byte>? Value { get; init; }

    /// <summary>
    /// Create time in milliseconds since the Unix epoch; null means "now" by the store's clock when
    /// the batch is built.
    /// </summary>
    public long? Timestamp { get; init; }

    /// <summary>Headers, or null for none.</summary>
    public IReadOnlyList<RecordHeader>? Headers { get; init; }
}
