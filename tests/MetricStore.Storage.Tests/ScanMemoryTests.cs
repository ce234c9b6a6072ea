using MetricStore.Storage.Query;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The line scans wait in for their columns (<see cref="ScanMemory"/>): first come, first served,
/// nobody passes a scan that waits, and a scan that gives up lets the next one in.
/// </summary>
public sealed class ScanMemoryTests
{
    [Fact]
    public async Task Waiting_scans_are_served_in_order_and_nobody_passes_them()
    {
        var memory = new ScanMemory(100);
        Assert.True(memory.TryTake(60));

        var a = memory.TakeAsync(60, CancellationToken.None).AsTask();
        var b = memory.TakeAsync(30, CancellationToken.None).AsTask();
        Assert.False(a.IsCompleted);
        Assert.False(b.IsCompleted); // 30 would fit, but a asked first
        Assert.False(memory.TryTake(10)); // neither does a scan that does not wait pass them
        Assert.Equal((60L, 2), (memory.UsedBytes, memory.Waiting));

        memory.Give(60);
        await a.WaitAsync(TimeSpan.FromSeconds(10));
        await b.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((90L, 0, 90L), (memory.UsedBytes, memory.Waiting, memory.PeakBytes));

        memory.Give(90);
        Assert.True(memory.TryTake(100));
        Assert.False(memory.TryTake(1));
    }

    [Fact]
    public async Task A_request_larger_than_the_bound_is_served_once_nothing_is_held()
    {
        var memory = new ScanMemory(10);
        Assert.True(memory.TryTake(5));
        var large = memory.TakeAsync(50, CancellationToken.None).AsTask();
        Assert.False(large.IsCompleted);

        memory.Give(5);
        await large.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(50, memory.UsedBytes);
        Assert.False(memory.TryTake(1));
    }

    [Fact]
    public async Task A_scan_that_gives_up_waiting_leaves_the_line_and_lets_the_next_in()
    {
        var memory = new ScanMemory(100);
        Assert.True(memory.TryTake(80));
        using var cancel = new CancellationTokenSource();
        var first = memory.TakeAsync(50, cancel.Token).AsTask();
        var next = memory.TakeAsync(20, CancellationToken.None).AsTask();
        Assert.False(next.IsCompleted);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);
        await next.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((100L, 0), (memory.UsedBytes, memory.Waiting));
    }
}
