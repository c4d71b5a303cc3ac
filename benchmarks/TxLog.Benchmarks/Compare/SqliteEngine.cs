using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// SQLite through Microsoft.Data.Sqlite, the usual embedded choice for state plus an outbox: WAL mode,
/// <c>synchronous=FULL</c> (every commit fsyncs the WAL), <c>busy_timeout=30000</c>, no connection pooling,
/// everything else at SQLite's defaults. One connection per writer; SQLite's single writer lock serializes
/// them and waiting writers poll through the busy handler — that serialization is what is being measured.
/// </summary>
public sealed class SqliteEngine : IEngine, IKvEngine
{
    private static readonly string[] KvVariants = [.. SqliteKvStore.Variants.Select(v => v.Variant)];

    /// <inheritdoc />
    public string Name => "sqlite";

    /// <inheritdoc />
    public IReadOnlyList<string> KvPutVariants => KvVariants;

    /// <inheritdoc />
    public ValueTask<IKvStore> OpenKvAsync(string directory, string variant)
    {
        foreach ((string name, string synchronous) in SqliteKvStore.Variants)
        {
            if (name == variant)
            {
                return ValueTask.FromResult<IKvStore>(new SqliteKvStore(Path.Combine(directory, "kv.db"), synchronous));
            }
        }

        throw new ArgumentException($"unknown kv-put variant '{variant}'", nameof(variant));
    }

    /// <inheritdoc />
    public ValueTask<IEngineStore> OpenAsync(string directory, Workload workload) =>
        ValueTask.FromResult<IEngineStore>(new SqliteStore(Path.Combine(directory, "bench.db")));
}

/// <summary>An open SQLite database with the three benchmark tables.</summary>
internal sealed class SqliteStore : IEngineStore
{
    private readonly string _connectionString;

    // The store's own connection: schema, W1/W4 load, W3 setup and the W4 scan.
    private readonly SqliteConnection _main;

    private SqliteCommand? _appendInsert;
    private SqliteParameter? _appendPayload;
    private bool _inTransaction;

    public SqliteStore(string path)
    {
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Pooling = false,
        }.ToString();
        _main = Connect(_connectionString);

        // journal_mode is persistent in the database file; setting it on every open is harmless.
        Execute(_main, "PRAGMA journal_mode=WAL;");
        Execute(_main, """
            CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL);
            """);
    }

    public ValueTask AppendAsync(ReadOnlyMemory<byte> payload)
    {
        if (_appendInsert is null)
        {
            (_appendInsert, _appendPayload) = PrepareInsert(_main);
        }

        if (!_inTransaction)
        {
            // W1 appends everything in one transaction; its COMMIT is the durable flush.
            Execute(_main, "BEGIN;");
            _inTransaction = true;
        }

        _appendPayload!.Value = BlobBuffer.Of(payload);
        _appendInsert.ExecuteNonQuery();
        return ValueTask.CompletedTask;
    }

    public ValueTask FlushAsync()
    {
        if (_inTransaction)
        {
            // The commit, and the WAL checkpoint SQLite may run inside it, are part of W1's window.
            Execute(_main, "COMMIT;");
            _inTransaction = false;
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<ICommitWriter> CreateCommitWriterAsync(int writerId) =>
        ValueTask.FromResult<ICommitWriter>(new CommitWriter(Connect(_connectionString)));

    public ValueTask CreateAccountsAsync(int count, long balance)
    {
        Execute(_main, "BEGIN;");
        using (SqliteCommand insert = _main.CreateCommand())
        {
            insert.CommandText = "INSERT INTO accounts(id, balance) VALUES ($id, $balance);";
            SqliteParameter id = insert.Parameters.Add("$id", SqliteType.Integer);
            insert.Parameters.AddWithValue("$balance", balance);
            insert.Prepare();
            for (int i = 0; i < count; i++)
            {
                id.Value = i;
                insert.ExecuteNonQuery();
            }
        }

        Execute(_main, "COMMIT;");
        return ValueTask.CompletedTask;
    }

    public ValueTask<IOutboxWriter> CreateOutboxWriterAsync(int writerId) =>
        ValueTask.FromResult<IOutboxWriter>(new OutboxWriter(Connect(_connectionString), withAccounts: true));

    public ValueTask<IOutboxLogWriter> CreateOutboxLogWriterAsync(int writerId) =>
        ValueTask.FromResult<IOutboxLogWriter>(new OutboxWriter(Connect(_connectionString), withAccounts: false));

    public ValueTask ScanAsync(ScanTally tally)
    {
        using SqliteCommand select = _main.CreateCommand();
        select.CommandText = "SELECT payload FROM log ORDER BY id;";
        using SqliteDataReader reader = select.ExecuteReader();
        byte[] buffer = new byte[64 * 1024];
        while (reader.Read())
        {
            // GetBytes copies into the reused buffer; a result equal to the buffer size may be truncated,
            // so only then ask for the real length (a null buffer returns it) and retry with a larger one.
            int length = (int)reader.GetBytes(0, 0, buffer, 0, buffer.Length);
            if (length == buffer.Length)
            {
                int full = (int)reader.GetBytes(0, 0, null, 0, 0);
                if (full > buffer.Length)
                {
                    buffer = new byte[full];
                    length = (int)reader.GetBytes(0, 0, buffer, 0, buffer.Length);
                }
            }

            tally.Add(buffer.AsSpan(0, length));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _appendInsert?.Dispose();
        _main.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>Opens a connection with the per-connection settings of WORKLOADS.md.</summary>
    private static SqliteConnection Connect(string connectionString)
    {
        var connection = new SqliteConnection(connectionString);
        connection.Open();
        Execute(connection, "PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;");
        return connection;
    }

    private static void Execute(SqliteConnection connection, string sql)
    {
        using SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static (SqliteCommand Command, SqliteParameter Payload) PrepareInsert(SqliteConnection connection)
    {
        SqliteCommand insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO log(payload) VALUES ($p);";
        SqliteParameter payload = insert.Parameters.Add("$p", SqliteType.Blob);
        insert.Prepare();
        return (insert, payload);
    }

    private static SqliteCommand Prepare(SqliteConnection connection, string sql)
    {
        SqliteCommand command = connection.CreateCommand();
        command.CommandText = sql;
        command.Prepare();
        return command;
    }

    /// <summary>W2: one connection, one autocommit INSERT per operation.</summary>
    private sealed class CommitWriter : ICommitWriter
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _insert;
        private readonly SqliteParameter _payload;

        public CommitWriter(SqliteConnection connection)
        {
            _connection = connection;
            (_insert, _payload) = PrepareInsert(connection);
        }

        public ValueTask CommitOneAsync(ReadOnlyMemory<byte> payload)
        {
            _payload.Value = BlobBuffer.Of(payload);
            _insert.ExecuteNonQuery();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _insert.Dispose();
            _connection.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>
    /// W3 and its log-only form: BEGIN IMMEDIATE, the two balance UPDATEs (W3 only), three outbox INSERTs,
    /// COMMIT — all prepared once.
    /// </summary>
    private sealed class OutboxWriter : IOutboxWriter, IOutboxLogWriter
    {
        private readonly SqliteConnection _connection;
        private readonly SqliteCommand _begin;
        private readonly SqliteCommand _insert;
        private readonly SqliteCommand _commit;
        private readonly SqliteCommand _rollback;
        private readonly SqliteParameter _topic;
        private readonly SqliteParameter _payload;
        private readonly BalanceUpdate? _debit;
        private readonly BalanceUpdate? _credit;

        public OutboxWriter(SqliteConnection connection, bool withAccounts)
        {
            _connection = connection;
            _begin = Prepare(connection, "BEGIN IMMEDIATE;");
            _commit = Prepare(connection, "COMMIT;");
            _rollback = Prepare(connection, "ROLLBACK;");

            _insert = connection.CreateCommand();
            _insert.CommandText = "INSERT INTO outbox(topic, payload) VALUES ($topic, $payload);";
            _topic = _insert.Parameters.Add("$topic", SqliteType.Text);
            _payload = _insert.Parameters.Add("$payload", SqliteType.Blob);
            _insert.Prepare();

            if (withAccounts)
            {
                _debit = new BalanceUpdate(connection, "UPDATE accounts SET balance = balance - $x WHERE id = $id;");
                _credit = new BalanceUpdate(connection, "UPDATE accounts SET balance = balance + $x WHERE id = $id;");
            }
        }

        public ValueTask CommitOneAsync(OutboxTransaction transaction) => Execute(transaction.Messages, transaction);

        public ValueTask CommitOneAsync(OutboxMessages messages) => Execute(messages, transfer: null);

        private ValueTask Execute(in OutboxMessages messages, OutboxTransaction? transfer)
        {
            // Integer parameter values are boxed per transaction: Microsoft.Data.Sqlite takes object values.
            _begin.ExecuteNonQuery();
            try
            {
                if (transfer is { } t)
                {
                    _debit!.Run(t.From, t.Amount);
                    _credit!.Run(t.To, t.Amount);
                }

                for (int i = 0; i < OutboxTransaction.Topics.Length; i++)
                {
                    _topic.Value = OutboxTransaction.Topics[i];
                    _payload.Value = BlobBuffer.Of(messages.GetMessage(i));
                    _insert.ExecuteNonQuery();
                }

                _commit.ExecuteNonQuery();
            }
            catch
            {
                _rollback.ExecuteNonQuery();
                throw;
            }

            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            _begin.Dispose();
            _debit?.Dispose();
            _credit?.Dispose();
            _insert.Dispose();
            _commit.Dispose();
            _rollback.Dispose();
            _connection.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>One prepared balance UPDATE with its two parameters.</summary>
    private sealed class BalanceUpdate : IDisposable
    {
        private readonly SqliteCommand _command;
        private readonly SqliteParameter _amount;
        private readonly SqliteParameter _id;

        public BalanceUpdate(SqliteConnection connection, string sql)
        {
            _command = connection.CreateCommand();
            _command.CommandText = sql;
            _amount = _command.Parameters.Add("$x", SqliteType.Integer);
            _id = _command.Parameters.Add("$id", SqliteType.Integer);
            _command.Prepare();
        }

        public void Run(int id, long amount)
        {
            _amount.Value = amount;
            _id.Value = id;
            _command.ExecuteNonQuery();
        }

        public void Dispose() => _command.Dispose();
    }

    /// <summary>
    /// Microsoft.Data.Sqlite binds blobs from <c>byte[]</c> values. The runner's payloads are whole arrays,
    /// so the array is passed as is (no copy, no allocation); any other memory is copied once.
    /// </summary>
    private static class BlobBuffer
    {
        public static byte[] Of(ReadOnlyMemory<byte> payload) =>
            MemoryMarshal.TryGetArray(payload, out ArraySegment<byte> segment)
            && segment.Offset == 0 && segment.Count == segment.Array!.Length
                ? segment.Array
                : payload.ToArray();
    }
}
