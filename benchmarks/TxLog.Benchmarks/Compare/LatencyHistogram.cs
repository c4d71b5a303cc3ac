using System.Diagnostics;
using System.Numerics;

namespace TxLog.Benchmarks.Compare;

/// <summary>
/// A fixed-size log-linear histogram of durations in <see cref="Stopwatch"/> ticks: 128 linear sub-buckets
/// per power of two, so any recorded value is known to within 0.8%. One per writer, allocated before the
/// timed window, so recording is a few instructions and never allocates; merged after the run.
/// </summary>
public sealed class LatencyHistogram
{
    private const int SubBucketBits = 7;
    private const int SubBucketCount = 1 << SubBucketBits;

    // Group 0 holds 0..127 exactly; group g >= 1 holds [128 << (g-1), 256 << (g-1)) in 128 steps.
    // 57 groups cover every non-negative long.
    private const int BucketCount = (64 - SubBucketBits) * SubBucketCount;

    private readonly long[] _counts = new long[BucketCount];
    private long _total;
    private long _max;

    /// <summary>Number of values recorded.</summary>
    public long Count => _total;

    /// <summary>Largest value recorded, exact, in ticks.</summary>
    public long MaxTicks => _max;

    /// <summary>Records one duration in <see cref="Stopwatch"/> ticks.</summary>
    public void Record(long ticks)
    {
        if (ticks < 0)
        {
            ticks = 0;
        }

        _counts[IndexOf(ticks)]++;
        _total++;
        if (ticks > _max)
        {
            _max = ticks;
        }
    }

    /// <summary>Adds every value of <paramref name="other"/> to this histogram.</summary>
    public void Add(LatencyHistogram other)
    {
        for (int i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        _total += other._total;
        _max = Math.Max(_max, other._max);
    }

    /// <summary>
    /// The value at quantile <paramref name="quantile"/> (0..1], in ticks: the midpoint of the bucket holding
    /// the value of that rank, capped at the exact maximum. Zero when nothing was recorded.
    /// </summary>
    public double ValueAtQuantile(double quantile)
    {
        if (_total == 0)
        {
            return 0;
        }

        long rank = Math.Max(1, (long)Math.Ceiling(quantile * _total));
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(Midpoint(i), _max);
            }
        }

        return _max;
    }

    private static int IndexOf(long value)
    {
        if (value < SubBucketCount)
        {
            return (int)value;
        }

        int highestBit = 63 - BitOperations.LeadingZeroCount((ulong)value);
        int shift = highestBit - SubBucketBits;
        int subBucket = (int)((value >> shift) & (SubBucketCount - 1));
        return ((shift + 1) << SubBucketBits) + subBucket;
    }

    private static double Midpoint(int index)
    {
        int group = index >> SubBucketBits;
        long subBucket = index & (SubBucketCount - 1);
        if (group == 0)
        {
            return subBucket;
        }

        int shift = group - 1;
        long low = (SubBucketCount + subBucket) << shift;
        long width = 1L << shift;
        return low + (width - 1) / 2.0;
    }
}
