namespace TxLog.Tests.Recovery;

/// <summary>
/// Collects the failed expectations of many cases run in one test (every byte of a batch), so the
/// test reports all failing positions at once instead of stopping at the first.
/// </summary>
internal sealed class Problems
{
    private readonly List<string> _list = [];

    public IReadOnlyList<string> List => _list;

    public void Add(string problem) => _list.Add(problem);

    public void Check(bool ok, string problem)
    {
        if (!ok)
        {
            _list.Add(problem);
        }
    }

    public void Equal<T>(T expected, T actual, string what)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            _list.Add($"{what}: expected {expected}, got {actual}");
        }
    }

    public void SameRecords(IReadOnlyList<string> expected, IReadOnlyList<string> actual, string what)
    {
        int common = Math.Min(expected.Count, actual.Count);
        for (int i = 0; i < common; i++)
        {
            if (expected[i] != actual[i])
            {
                _list.Add($"{what}: record #{i} is '{actual[i]}', expected '{expected[i]}'");
                return;
            }
        }

        if (expected.Count != actual.Count)
        {
            _list.Add($"{what}: {actual.Count} records, expected {expected.Count}");
        }
    }

    /// <summary>Runs one case; an exception it throws is a problem of that case.</summary>
    public void Run(string label, Action<Problems> body)
    {
        var own = new Problems();
        try
        {
            body(own);
        }
        catch (Exception e)
        {
            own.Add($"{e.GetType().Name}: {e.Message}");
        }

        foreach (string problem in own._list)
        {
            _list.Add($"{label}: {problem}");
        }
    }

    /// <summary>Fails the test with every collected problem, if there is any.</summary>
    public void AssertNone()
    {
        if (_list.Count > 0)
        {
            Assert.Fail(ToString());
        }
    }

    public override string ToString() => _list.Count == 0
        ? "no problems"
        : $"{_list.Count} problems:{Environment.NewLine}" + string.Join(Environment.NewLine, _list.Take(40))
            + (_list.Count > 40 ? $"{Environment.NewLine}..." : "");
}
