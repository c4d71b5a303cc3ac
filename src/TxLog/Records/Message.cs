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

    /// <summary>Creates a header; a null array is a null value (not an empty one).</summary>
    /// <param name="key">The header key; not null.</param>
    /// <param name="value">The header value, or null.</param>
    public RecordHeader(string key, byte[]? value)
        : this(key, value is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(value))
    {
    }

    /// <summary>The header key.</summary>
    public string Key { get; }

    /// <summary>The header value; null is distinct from empty.</summary>
    public ReadOnlyMemory<byte>? Value { get; }
}

/// <summary>
/// A record to append: key, value, headers and timestamp. A value type so that appending does not
/// allocate per record; null key and null value are distinct from empty ones (Kafka's tombstones and
/// keyless records). Note: assigning a null <c>byte[]</c> to <see cref="Key"/> or <see cref="Value"/>
/// directly yields an empty (present) memory through C#'s implicit conversion; the constructors
/// taking <c>byte[]?</c> map null to null.
/// </summary>
public readonly struct Message
{
    /// <summary>Creates a message with a value (null: a null value) and no key.</summary>
    /// <param name="value">The value, or null.</param>
    public Message(byte[]? value)
    {
        Value = value is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(value);
    }

    /// <summary>Creates a message with a key and a value; a null array means a null key or value (not an empty one).</summary>
    /// <param name="key">The key, or null.</param>
    /// <param name="value">The value, or null.</param>
    public Message(byte[]? key, byte[]? value)
    {
        Key = key is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(key);
        Value = value is null ? (ReadOnlyMemory<byte>?)null : new ReadOnlyMemory<byte>(value);
    }

    /// <summary>Creates a message with a value (always present, possibly empty) and no key.</summary>
    /// <param name="value">The value.</param>
    public Message(ReadOnlyMemory<byte> value)
    {
        Value = value;
    }

    /// <summary>Creates a message with a key and a value (both present, possibly empty).</summary>
    /// <param name="key">The key.</param>
    /// <param name="value">The value.</param>
    public Message(ReadOnlyMemory<byte> key, ReadOnlyMemory<byte> value)
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
    /// the batch is built (there is no "no timestamp" value: null is it).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative value (refused as Kafka's producer refuses
    /// it: a batch's timestamps would disagree with its header, and time retention would never delete it).</exception>
    public long? Timestamp
    {
        get => _timestamp;
        init
        {
            if (value < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(Timestamp), value, "A record timestamp cannot be negative; leave it null for the store's clock.");
            }

            _timestamp = value;
        }
    }

    private readonly long? _timestamp;

    /// <summary>Headers, or null for none.</summary>
    public IReadOnlyList<RecordHeader>? Headers { get; init; }
}
