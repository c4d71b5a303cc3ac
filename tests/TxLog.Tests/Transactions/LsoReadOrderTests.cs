using TxLog.Producers;
using TxLog.Records;
using TxLog.Tests.Storage;
using static TxLog.Tests.Transactions.Tx;

namespace TxLog.Tests.Transactions;

public class LsoReadOrderTests
{
    private static void Abort(LogStore store, LogPartition p, long pid, short epoch)
    {
        RecordBatchBuilder b = store.RentBuilder();
        try
        {
            b.Reset(ControlRecord.BatchAttributes, pid, epoch, RecordBatchLayout.NoSequence);
            ControlRecord.AddTo(b, ControlRecordType.Abort, coordinatorEpoch: 0, store.NowMs());
            var h = new ProducerBatchHeader(pid, epoch, RecordBatchLayout.NoSequence, 0, true, true, ControlRecordType.Abort, 0, b.MaxTimestamp);
            p.AppendProducerBatch(b, h);
        }
        finally
        {
            store.ReturnBuilder(b);
        }
    }

    // LastStableOffset reads FirstUnstableOffset before _appendingUnstable and the HW. A reader that reads
    // FirstUnstableOffset while no transaction is open and the HW after a new transaction's first batch
    // was fully applied returns an LSO above that open transaction's first offset.
    [Test]
    public void The_LSO_never_exceeds_the_first_offset_of_a_transaction_open_after_it_was_computed()
    {
        using var dir = new TempDirectory();
        using LogStore store = LogStore.Open(dir.Path, Options()); // mode None: HW follows the log end
        store.CreateTopic("t");
        LogPartition p = store.GetPartition("t", 0);
        const long pid = 777;
        int stop = 0;
        long violations = 0;
        string? example = null;
        var readers = new List<Thread>();
        for (int r = 0; r < 4; r++)
        {
            var t = new Thread(() =>
            {
                while (Volatile.Read(ref stop) == 0)
                {
                    long lso = p.LastStableOffset;
                    long fuo = p.ProducerState.FirstUnstableOffset;
                    if (lso > fuo)
                    {
                        Interlocked.Increment(ref violations);
                        example ??= $"lso {lso} > first offset {fuo} of an open transaction";
                    }
                }
            }) { IsBackground = true };
            t.Start();
            readers.Add(t);
        }

        var until = DateTime.UtcNow.AddSeconds(3);
        int seq = 0;
        while (DateTime.UtcNow < until && Interlocked.Read(ref violations) == 0)
        {
            AppendRaw(store, p, pid, 0, seq, true, "x");
            seq++;
            Abort(store, p, pid, 0);
        }

        Volatile.Write(ref stop, 1);
        foreach (Thread t in readers)
        {
            t.Join();
        }

        Assert.That(violations, Is.Zero, example);
    }
}
