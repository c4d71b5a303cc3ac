using BenchmarkDotNet.Running;
using TxLog.Benchmarks.Compare;

// `compare ...` runs the side-by-side comparison with the peers (Compare/CompareRunner.cs, WORKLOADS.md);
// anything else is handed to BenchmarkDotNet's switcher for the micro-benchmarks in this assembly.
if (args.Length > 0 && args[0] == "compare")
{
    using AllocationSampler? sampler = Environment.GetEnvironmentVariable("TXLOG_ALLOC_SAMPLE") == "1" ? new AllocationSampler() : null;
    int code = await CompareRunner.RunAsync(args);
    sampler?.Print();
    return code;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
