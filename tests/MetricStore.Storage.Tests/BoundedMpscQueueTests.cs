using MetricStore.Storage.Ingest;

namespace MetricStore.Storage.Tests;

public sealed class BoundedMpscQueueTests
{
    [Fact]
    public void A_full_ring_refuses_and_accepts_again_after_a_dequeue()
    {
        var ring = new BoundedMpscQueue<int>(4);
        for (var i = 0; i < 4; i++)
        {
            Assert.True(ring.TryEnqueue(i));
        }

        Assert.False(ring.TryEnqueue(99));
        Assert.True(ring.TryDequeue(out var first));
        Assert.Equal(0, first);
        Assert.True(ring.TryEnqueue(4));
        var rest = new List<int>();
        while (ring.TryDequeue(out var x))
        {
            rest.Add(x);
        }

        Assert.Equal([1, 2, 3, 4], rest);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(1000)]
    public void Capacity_must_be_a_power_of_two(int capacity) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new BoundedMpscQueue<int>(capacity));

    [Fact]
    public async Task Many_producers_through_a_small_ring_deliver_every_item_once_in_producer_order()
    {
        const int Producers = 6;
        const int PerProducer = 20_000;
        var ring = new BoundedMpscQueue<(int Producer, int Index)>(16);
        var producers = Enumerable.Range(0, Producers).Select(p => Task.Run(async () =>
        {
            for (var i = 0; i < PerProducer; i++)
            {
                await ring.EnqueueAsync((p, i), CancellationToken.None);
            }
        })).ToArray();

        var next = new int[Producers];
        var received = 0;
        var consumer = Task.Run(() =>
        {
            while (received < Producers * PerProducer)
            {
                if (ring.TryDequeue(out var item))
                {
                    Assert.Equal(next[item.Producer], item.Index);
                    next[item.Producer]++;
                    received++;
                }
                else
                {
                    ring.WaitToRead(10);
                }
            }
        });

        await Task.WhenAll(producers).WaitAsync(TimeSpan.FromSeconds(60));
        await consumer.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(next, n => Assert.Equal(PerProducer, n));
        Assert.Equal(0, ring.Count);
    }

    [Fact]
    public async Task A_producer_waits_while_full_and_goes_on_when_room_appears()
    {
        var ring = new BoundedMpscQueue<int>(2);
        Assert.True(ring.TryEnqueue(1));
        Assert.True(ring.TryEnqueue(2));
        var blocked = ring.EnqueueAsync(3, CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(blocked.IsCompleted, "the producer must wait while the ring is full");
        Assert.True(ring.TryDequeue(out _));
        await blocked.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, ring.Count);
    }
}
