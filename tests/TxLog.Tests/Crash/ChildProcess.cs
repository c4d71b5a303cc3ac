using System.Diagnostics;
using System.Text;

namespace TxLog.Tests.Crash;

/// <summary>
/// A running <c>TxLog.CrashChild</c> (<c>dotnet TxLog.CrashChild.dll &lt;mode&gt; &lt;dataDir&gt; [options]</c>),
/// its stdout collected as whole lines: a line counts only once its newline arrived, so a line cut
/// by a kill is never parsed. Stdin is a pipe (closing it ends the <c>hold-lock</c> mode). Disposing
/// kills the child if it still runs. Thread-safe.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];     // guarded by itself; Monitor.PulseAll on each new line and at end
    private readonly StringBuilder _standardError = new();
    private readonly Thread _reader;
    private bool _endOfOutput;                      // guarded by _lines
    private string _unterminated = "";             // bytes after the last newline at end of output

    private ChildProcess(Process process)
    {
        _process = process;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_standardError)
                {
                    _standardError.AppendLine(e.Data);
                }
            }
        };
        _process.BeginErrorReadLine();
        _reader = new Thread(ReadOutput) { IsBackground = true, Name = "crash child stdout" };
        _reader.Start();
    }

    /// <summary>The child program, copied next to the tests by the project reference.</summary>
    public static string ChildDll => Path.Combine(AppContext.BaseDirectory, "TxLog.CrashChild.dll");

    /// <summary>Process id of the child.</summary>
    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string StandardError
    {
        get
        {
            lock (_standardError)
            {
                return _standardError.ToString();
            }
        }
    }

    /// <summary>The complete lines printed so far.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>What followed the last newline when the output ended (a line cut by a kill), or "".</summary>
    public string Unterminated
    {
        get
        {
            lock (_lines)
            {
                return _unterminated;
            }
        }
    }

    /// <summary>Starts the child with the same dotnet host as the tests.</summary>
    public static ChildProcess Start(string mode, string dataDirectory, IEnumerable<string> options)
    {
        Assert.That(File.Exists(ChildDll), Is.True, $"the crash child is built next to the tests: {ChildDll}");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(ChildDll);
        start.ArgumentList.Add(mode);
        start.ArgumentList.Add(dataDirectory);
        foreach (string option in options)
        {
            start.ArgumentList.Add(option);
        }

        return new ChildProcess(Process.Start(start) ?? throw new InvalidOperationException("Could not start the crash child."));
    }

    /// <summary>
    /// Waits until a complete line matching <paramref name="match"/> has been printed; false when the
    /// output ends or the time runs out first.
    /// </summary>
    public bool WaitForLine(Func<string, bool> match, TimeSpan timeout, out string? line)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        int checkedCount = 0;
        lock (_lines)
        {
            while (true)
            {
                for (; checkedCount < _lines.Count; checkedCount++)
                {
                    if (match(_lines[checkedCount]))
                    {
                        line = _lines[checkedCount];
                        return true;
                    }
                }

                long left = deadline - Environment.TickCount64;
                if (_endOfOutput || left <= 0)
                {
                    line = null;
                    return false;
                }

                Monitor.Wait(_lines, (int)Math.Min(left, int.MaxValue));
            }
        }
    }

    /// <summary>SIGKILL on Unix (TerminateProcess on Windows): no handler, no flush, no finally runs.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>Closes the child's stdin.</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>Waits for the child to exit and for its output to be read to the end.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        if (!_process.WaitForExit(timeout))
        {
            return false;
        }

        return _reader.Join(TimeSpan.FromMilliseconds(Math.Max(0, deadline - Environment.TickCount64)));
    }

    private void ReadOutput()
    {
        Stream stdout = _process.StandardOutput.BaseStream;
        byte[] buffer = new byte[64 * 1024];
        var pending = new List<byte>();
        try
        {
            int n;
            while ((n = stdout.Read(buffer)) > 0)
            {
                lock (_lines)
                {
                    for (int i = 0; i < n; i++)
                    {
                        if (buffer[i] == (byte)'\n')
                        {
                            _lines.Add(Encoding.UTF8.GetString(pending.ToArray()));
                            pending.Clear();
                        }
                        else
                        {
                            pending.Add(buffer[i]);
                        }
                    }

                    Monitor.PulseAll(_lines);
                }
            }
        }
        catch (IOException)
        {
            // The pipe broke: the output ended.
        }
        finally
        {
            lock (_lines)
            {
                _unterminated = Encoding.UTF8.GetString(pending.ToArray());
                _endOfOutput = true;
                Monitor.PulseAll(_lines);
            }
        }
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                Kill();
            }

            WaitForExit(TimeSpan.FromSeconds(10));
        }
        finally
        {
            _process.Dispose();
        }
    }
}
