using System.Globalization;
using System.Text;
using System.Text.Unicode;
using TxLog.Inspection;
using TxLog.Storage;

namespace TxLog.Cli.Commands;

/// <summary>A usage error found after parsing (a missing directory): exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>How keys and values are printed by <c>dump --records</c>.</summary>
internal enum BytesFormat
{
    /// <summary>UTF-8 when the bytes are valid, printable UTF-8, else hex.</summary>
    Auto,

    /// <summary>Always UTF-8 (invalid sequences become U+FFFD; control characters are escaped).</summary>
    Utf8,

    /// <summary>Always hex, prefixed with 0x.</summary>
    Hex,
}

/// <summary>Helpers shared by the commands.</summary>
internal static class CliSupport
{
    /// <summary>The data directory at <paramref name="path"/>; a usage error when it does not exist or holds no store.</summary>
    public static DataDirectory RequireDataDirectory(string path)
    {
        if (File.Exists(path))
        {
            throw new UsageException($"'{path}' is a file; give the data directory (the folder that holds topics.meta and the partition directories)");
        }

        if (!Directory.Exists(path))
        {
            throw new UsageException($"data directory '{path}' does not exist");
        }

        var directory = new DataDirectory(path);
        if (!directory.LooksLikeStore)
        {
            throw new UsageException($"'{path}' is not a TxLog data directory (it has no {StoreMetadata.FileName} and no partition directories)");
        }

        return directory;
    }

    /// <summary>Warns on stderr when a store holds the directory's lock; returns true then.</summary>
    public static bool WarnIfOpen(CliContext context, DataDirectory directory)
    {
        if (directory.ProbeLock() != StoreLockState.Held)
        {
            return false;
        }

        context.Error.WriteLine($"warning: the store is open by another process (its lock file {LogStore.LockFileName} is held); its files are read while it writes them, so results may be inconsistent");
        return true;
    }

    /// <summary>Opens a directory for read-only inspection, warning when the store is open.</summary>
    public static StoreInspection Inspect(CliContext context, string path, int maxBatchBytes)
    {
        DataDirectory directory = RequireDataDirectory(path);
        WarnIfOpen(context, directory);
        return StoreInspection.Open(directory.Path, maxBatchBytes);
    }

    /// <summary>A timestamp (ms since the Unix epoch) as ISO 8601 UTC.</summary>
    public static string FormatTimestamp(long ms)
    {
        if (ms < -62135596800000L || ms > 253402300799999L)
        {
            return ms.ToString(CultureInfo.InvariantCulture);
        }

        return DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// <paramref name="nowMs"/> − <paramref name="sinceMs"/> as a TimeSpan, clamped to ±1000 years:
    /// timestamps come from records and are not validated (microseconds, garbage).
    /// </summary>
    public static TimeSpan Age(long nowMs, long sinceMs)
    {
        double ms = (double)nowMs - sinceMs;
        double limit = TimeSpan.FromDays(365.0 * 1000).TotalMilliseconds;
        return TimeSpan.FromMilliseconds(Math.Clamp(ms, -limit, limit));
    }

    /// <summary>A duration as "45s", "12m 05s", "2h 05m" or "3d 04h".</summary>
    public static string FormatAge(TimeSpan age)
    {
        if (age < TimeSpan.Zero)
        {
            return "-" + FormatAge(-age);
        }

        if (age.TotalMinutes < 1)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{(int)age.TotalSeconds}s");
        }

        if (age.TotalHours < 1)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{age.Minutes}m {age.Seconds:00}s");
        }

        if (age.TotalDays < 1)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{age.Hours}h {age.Minutes:00}m");
        }

        return string.Create(CultureInfo.InvariantCulture, $"{(long)age.TotalDays}d {age.Hours:00}h");
    }

    /// <summary>A long as invariant text.</summary>
    public static string Num(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Prints a key or value: null, hex, or UTF-8 with control characters escaped.</summary>
    public static string FormatBytes(ReadOnlySpan<byte> bytes, bool present, BytesFormat format)
    {
        if (!present)
        {
            return "null";
        }

        if (format == BytesFormat.Hex || (format == BytesFormat.Auto && !IsPrintableUtf8(bytes)))
        {
            return "0x" + Convert.ToHexStringLower(bytes);
        }

        string text = Encoding.UTF8.GetString(bytes);
        if (text.Length == 0)
        {
            return "\"\"";
        }

        var builder = new StringBuilder(text.Length);
        foreach (char c in text)
        {
            switch (c)
            {
                case '\n':
                    builder.Append("\\n");
                    break;
                case '\r':
                    builder.Append("\\r");
                    break;
                case '\t':
                    builder.Append("\\t");
                    break;
                default:
                    if (char.IsControl(c))
                    {
                        builder.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
                    }
                    else
                    {
                        builder.Append(c);
                    }

                    break;
            }
        }

        return builder.ToString();
    }

    private static bool IsPrintableUtf8(ReadOnlySpan<byte> bytes)
    {
        if (!Utf8.IsValid(bytes))
        {
            return false;
        }

        foreach (char c in Encoding.UTF8.GetString(bytes))
        {
            if (char.IsControl(c))
            {
                return false;
            }
        }

        return true;
    }
}
