using MetricStore.Tests;
using static MetricStore.Storage.Tests.EngineHarness;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The brute-force reference for property tests: writes requests to a real engine, applies an action
/// after each (0 nothing, 1 seal, 2 close and reopen), and checks every read against a last-write-wins map.
/// </summary>
internal static class ModelCheck
{
    public static void Run(Func<string, StorageOptions> options, IEnumerable<((int Step, double Value)[] Points, int Action)> requests)
    {
        using var directory = new TempDirectory();
        var engine = StorageEngine.Open(options(directory.Path));
        try
        {
            var model = new SortedDictionary<long, double>();
            ulong seq = 0;
            foreach (var (points, action) in requests)
            {
                var steps = points.Select(p => (long)p.Step).ToArray();
                var values = points.Select(p => p.Value).ToArray();
                engine.WriteAsync(Batch("w", ++seq, (Key(), steps, values))).AsTask().GetAwaiter().GetResult();
                for (var i = 0; i < steps.Length; i++)
                {
                    model[steps[i]] = values[i];
                }

                if (action == 1)
                {
                    engine.SealNowAsync().GetAwaiter().GetResult();
                }
                else if (action == 2)
                {
                    engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
                    engine = StorageEngine.Open(options(directory.Path));
                }

                var read = Read(engine, Key())!;
                Assert.Equal(model.Keys, read.Steps.AsSpan(0, read.Count).ToArray());
                Assert.Equal(model.Values, read.Values.AsSpan(0, read.Count).ToArray());
            }
        }
        finally
        {
            engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
