// Sums the runtime's GCAllocationTick events (one per ~100 KB allocated, with the type and size of
// the object that crossed the mark) of an EventPipe trace: by type and size, per second, and the
// largest types of every second that allocated more than 500 MB. With --stacks TEXT, also the
// call stacks (innermost 14 frames) that allocated the types whose name and size contain TEXT.
// See README.md.
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

if (args.Length is not (1 or 3) || (args.Length == 3 && args[1] != "--stacks"))
{
    Console.Error.WriteLine("usage: alloc-trace TRACE.nettrace [--stacks TEXT]");
    return 2;
}

if (args.Length == 3)
{
    var byStack = new Dictionary<string, long>();
    using var log = new TraceLog(TraceLog.CreateFromEventPipeDataFile(args[0]));
    var stackSource = log.Events.GetSource();
    var parser = new ClrTraceEventParser(stackSource);
    parser.GCAllocationTick += e =>
    {
        var label = $"{e.TypeName}{(e.AllocationKind == GCAllocationKind.Large ? " [LOH]" : "")} {e.ObjectSize}";
        if (!label.Contains(args[2], StringComparison.Ordinal))
        {
            return;
        }

        var frames = new List<string>();
        for (var frame = e.CallStack(); frame is not null && frames.Count < 14; frame = frame.Caller)
        {
            var name = frame.CodeAddress.FullMethodName;
            if (!string.IsNullOrEmpty(name))
            {
                frames.Add(name);
            }
        }

        var stack = label + "\n      " + string.Join("\n      ", frames);
        byStack[stack] = byStack.GetValueOrDefault(stack) + e.AllocationAmount64;
    };
    stackSource.Process();
    foreach (var (stack, bytes) in byStack.OrderByDescending(kv => kv.Value).Take(12))
    {
        Console.WriteLine($"{bytes / 1e6,10:F1} MB  {stack}");
    }

    return 0;
}

var byType = new Dictionary<(string Type, long Size), long>();
var bySecond = new SortedDictionary<int, long>();
var byTypeAndSecond = new Dictionary<(int Second, string Type, long Size), long>();
using (var source = new EventPipeEventSource(args[0]))
{
    var clr = new ClrTraceEventParser(source);
    clr.GCAllocationTick += e =>
    {
        var type = e.TypeName + (e.AllocationKind == GCAllocationKind.Large ? " [LOH]" : "");
        var second = (int)(e.TimeStampRelativeMSec / 1000);
        byType[(type, e.ObjectSize)] = byType.GetValueOrDefault((type, e.ObjectSize)) + e.AllocationAmount64;
        bySecond[second] = bySecond.GetValueOrDefault(second) + e.AllocationAmount64;
        byTypeAndSecond[(second, type, e.ObjectSize)] = byTypeAndSecond.GetValueOrDefault((second, type, e.ObjectSize)) + e.AllocationAmount64;
    };
    source.Process();
}

Console.WriteLine("MB allocated, by type and object size (the 25 largest):");
foreach (var ((type, size), bytes) in byType.OrderByDescending(kv => kv.Value).Take(25))
{
    Console.WriteLine($"{bytes / 1e6,10:F1}  {type}  {size} bytes");
}

Console.WriteLine("MB per second: " + string.Join(" ", bySecond.Select(kv => $"{kv.Key}s:{kv.Value / 1e6:F0}")));
foreach (var second in bySecond.Where(kv => kv.Value > 500e6).Select(kv => kv.Key))
{
    var top = byTypeAndSecond.Where(kv => kv.Key.Second == second).OrderByDescending(kv => kv.Value).Take(8);
    Console.WriteLine($"{second}s: " + string.Join(", ", top.Select(kv => $"{kv.Key.Type} {kv.Key.Size}: {kv.Value / 1e6:F0}")));
}

return 0;
