using BenchmarkDotNet.Running;
using TxLog.Benchmarks.Compare;

// `compare ...` runs the side-by-side comparison with the peers (Compare/CompareRunner.cs, WORKLOADS.md);
// anything else is handed to BenchmarkDotNet's switcher for the micro-benchmarks in this assembly.
if (args.Length > 0 && args[0] == "compare")
{
    return await CompareRunner.RunAsync(args);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
