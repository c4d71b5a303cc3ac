using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// The W3 emulation for engines that are plain logs (raw, raw-prealloc, fasterlog). A log cannot update
/// account rows atomically with the messages, so the transaction is serialized as one entry, committed
/// durably as one record, and only then applied to an in-memory balance array. There is no isolation, no
/// balance check and no index: it is the cheapest thing a log-only user could build, not SQLite's equivalent.
/// </summary>
/// <remarks>
/// Entry layout (little-endian): <c>u8 2</c>, 2 x <c>[i32 account][i64 delta]</c>, <c>u8 3</c>,
/// 3 x <c>[u8 topicLength][topic][i32 length][payload]</c> — 686 bytes with 200-byte messages.
/// The W3 log-only form (<see cref="CreateLogOnlyWriter"/>) writes the same layout with no deltas:
/// <c>u8 0</c>, <c>u8 3</c>, 3 x <c>[u8 topicLength][topic][i32 length][payload]</c> — 662 bytes.
/// </remarks>
public sealed class LogOutbox
{
    private static readonly byte[][] TopicBytes = EncodeTopics();

    private readonly long[] _balances;

    /// <summary>Creates the balance array: accounts 0..count-1, each holding <paramref name="balance"/>.</summary>
    public LogOutbox(int count, long balance)
    {
        _balances = new long[count];
        Array.Fill(_balances, balance);
    }

    /// <summary>Sum of all balances; transfers never change it, so the runner can check it.</summary>
    public long TotalBalance()
    {
        long total = 0;
        foreach (long balance in _balances)
        {
            total += balance;
        }

        return total;
    }

    /// <summary>Wraps a durable single-record writer into a W3 writer over this balance array.</summary>
    public IOutboxWriter CreateWriter(ICommitWriter log) => new Writer(log, _balances);

    /// <summary>
    /// Wraps a durable single-record writer into a W3 log-only writer: the three messages become one entry
    /// (no deltas, no balances), committed durably as one record.
    /// </summary>
    public static IOutboxLogWriter CreateLogOnlyWriter(ICommitWriter log) => new LogOnlyWriter(log);

    /// <summary>Size of the entry <see cref="Encode(in OutboxTransaction, Span{byte})"/> writes for <paramref name="transaction"/>.</summary>
    public static int EncodedLength(in OutboxTransaction transaction) =>
        1 + 2 * (sizeof(int) + sizeof(long)) + MessagesLength(transaction.Messages);

    /// <summary>Serializes <paramref name="transaction"/> into <paramref name="destination"/>; returns the length.</summary>
    public static int Encode(in OutboxTransaction transaction, Span<byte> destination)
    {
        int at = 0;
        destination[at++] = 2;
        at = WriteDelta(destination, at, transaction.From, -transaction.Amount);
        at = WriteDelta(destination, at, transaction.To, transaction.Amount);
        return WriteMessages(destination, at, transaction.Messages);
    }

    /// <summary>Size of the entry <see cref="Encode(in OutboxMessages, Span{byte})"/> writes for <paramref name="messages"/>.</summary>
    public static int EncodedLength(in OutboxMessages messages) => 1 + MessagesLength(messages);

    /// <summary>Serializes the log-only entry (no deltas) into <paramref name="destination"/>; returns the length.</summary>
    public static int Encode(in OutboxMessages messages, Span<byte> destination)
    {
        destination[0] = 0;
        return WriteMessages(destination, 1, messages);
    }

    // The message part of both entry kinds: a count byte, then per topic its name and the message.
    private static int MessagesLength(in OutboxMessages messages)
    {
        int length = 1;
        for (int i = 0; i < TopicBytes.Length; i++)
        {
            length += 1 + TopicBytes[i].Length + sizeof(int) + messages.GetMessage(i).Length;
        }

        return length;
    }

    private static int WriteMessages(Span<byte> destination, int at, in OutboxMessages messages)
    {
        destination[at++] = (byte)TopicBytes.Length;
        for (int i = 0; i < TopicBytes.Length; i++)
        {
            at = WriteMessage(destination, at, TopicBytes[i], messages.GetMessage(i).Span);
        }

        return at;
    }

    private static int WriteMessage(Span<byte> destination, int at, byte[] topic, ReadOnlySpan<byte> message)
    {
        destination[at++] = (byte)topic.Length;
        topic.CopyTo(destination[at..]);
        at += topic.Length;
        BinaryPrimitives.WriteInt32LittleEndian(destination[at..], message.Length);
        at += sizeof(int);
        message.CopyTo(destination[at..]);
        return at + message.Length;
    }

    private static int WriteDelta(Span<byte> destination, int at, int account, long delta)
    {
        BinaryPrimitives.WriteInt32LittleEndian(destination[at..], account);
        BinaryPrimitives.WriteInt64LittleEndian(destination[(at + sizeof(int))..], delta);
        return at + sizeof(int) + sizeof(long);
    }

    private static byte[][] EncodeTopics()
    {
        var topics = new byte[OutboxTransaction.Topics.Length][];
        for (int i = 0; i < topics.Length; i++)
        {
            topics[i] = Encoding.ASCII.GetBytes(OutboxTransaction.Topics[i]);
        }

        return topics;
    }

    /// <summary>One W3 writer: encode, commit durably, then apply the deltas.</summary>
    private sealed class Writer(ICommitWriter log, long[] balances) : IOutboxWriter
    {
        // One entry buffer per writer, reused: the log copies it before CommitOneAsync completes.
        private byte[] _entry = [];

        // Pooled builder: for asynchronous logs the state machine would otherwise be allocated per
        // transaction; for synchronous ones the method completes inline and allocates nothing anyway.
        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
        public async ValueTask CommitOneAsync(OutboxTransaction transaction)
        {
            int length = EncodedLength(transaction);
            if (_entry.Length != length)
            {
                _entry = new byte[length];
            }

            Encode(transaction, _entry);
            await log.CommitOneAsync(_entry);

            // Applied only after the entry is durable: a crash before this point replays it from the log.
            Interlocked.Add(ref balances[transaction.From], -transaction.Amount);
            Interlocked.Add(ref balances[transaction.To], transaction.Amount);
        }

        public ValueTask DisposeAsync() => log.DisposeAsync();
    }

    /// <summary>One W3 log-only writer: encode the three messages as one entry and commit it durably.</summary>
    private sealed class LogOnlyWriter(ICommitWriter log) : IOutboxLogWriter
    {
        // One entry buffer per writer, reused: the log copies it before CommitOneAsync completes.
        private byte[] _entry = [];

        public ValueTask CommitOneAsync(OutboxMessages messages)
        {
            int length = EncodedLength(messages);
            if (_entry.Length != length)
            {
                _entry = new byte[length];
            }

            Encode(messages, _entry);
            return log.CommitOneAsync(_entry);
        }

        public ValueTask DisposeAsync() => log.DisposeAsync();
    }
}
