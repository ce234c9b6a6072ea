using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>IngestService.Write on a real server, driven at the wire level to pin the contract.</summary>
public sealed class IngestTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    /// <summary>Each test fails if the shared server logged an error during it (xUnit does not fail a test for fixture cleanup).</summary>
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private async Task<string> NewRunIdAsync()
    {
        var run = await fixture.Server.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = await ExperimentAsync() });
        return run.RunId;
    }

    private async Task<string> ExperimentAsync()
    {
        var name = Unique.Name("ingest");
        await fixture.Server.Client.CreateExperimentAsync(name);
        return name;
    }

    private static SeriesBatch Batch(string runId, string metric, long[] steps, double[] values, string? rank = null)
    {
        var batch = new SeriesBatch { Key = new SeriesKey { RunId = runId, Metric = metric } };
        if (rank is not null)
        {
            batch.Key.Labels["rank"] = rank;
        }

        batch.Steps.AddRange(steps);
        batch.Values.AddRange(values);
        return batch;
    }

    private static WriteRequest Request(string writer, ulong seq, params SeriesBatch[] batches)
    {
        var request = new WriteRequest { WriterId = writer, Seq = seq };
        request.Batches.AddRange(batches);
        return request;
    }

    /// <summary>Sends the requests on one stream and returns every ack, in order.</summary>
    private async Task<List<WriteAck>> SendAsync(params WriteRequest[] requests)
    {
        using var call = fixture.Server.Client.Ingest.Write();
        foreach (var r in requests)
        {
            await call.RequestStream.WriteAsync(r);
        }

        await call.RequestStream.CompleteAsync();
        var acks = new List<WriteAck>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            acks.Add(call.ResponseStream.Current);
        }

        return acks;
    }

    [Fact]
    public async Task Each_request_is_acknowledged_with_its_durable_seq_and_points_read_back()
    {
        var run = await NewRunIdAsync();
        var acks = await SendAsync(
            Request("w1", 1, Batch(run, "loss", [0, 1, 2], [3.0, 2.0, 1.0])),
            Request("w1", 2, Batch(run, "loss", [3, 4], [0.5, 0.25])));
        Assert.Equal(2, acks.Count);
        Assert.True(acks[0].DurableSeq >= 1);
        Assert.Equal(2ul, acks[1].DurableSeq);

        var (steps, values, timestamps) = await fixture.Server.Client.ReadSeriesAsync(run, "loss");
        Assert.Equal([0L, 1, 2, 3, 4], steps);
        Assert.Equal([3.0, 2.0, 1.0, 0.5, 0.25], values);
        Assert.All(timestamps, t => Assert.True(t > 1_700_000_000_000, $"server time expected, got {t}"));
    }

    [Fact]
    public async Task A_request_resent_on_a_new_stream_is_acknowledged_and_not_applied_again()
    {
        var run = await NewRunIdAsync();
        await SendAsync(Request("w2", 1, Batch(run, "acc", [7], [0.1])), Request("w2", 2, Batch(run, "acc", [7], [0.2])));
        var acks = await SendAsync(Request("w2", 1, Batch(run, "acc", [7], [0.1])), Request("w2", 2, Batch(run, "acc", [7], [0.2])), Request("w2", 3, Batch(run, "acc", [8], [0.3])));
        // Acks are cumulative: each is at least its request's seq, never decreasing, ending at 3.
        Assert.Equal(3, acks.Count);
        Assert.True(acks[0].DurableSeq >= 2 && acks[1].DurableSeq >= acks[0].DurableSeq, string.Join(",", acks.Select(a => a.DurableSeq)));
        Assert.Equal(3ul, acks[2].DurableSeq);
        var (steps, values, _) = await fixture.Server.Client.ReadSeriesAsync(run, "acc");
        Assert.Equal([7L, 8], steps);
        Assert.Equal([0.2, 0.3], values);
    }

    [Fact]
    public async Task A_seq_gap_ends_the_stream_with_failed_precondition_naming_the_expected_seq()
    {
        var run = await NewRunIdAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => SendAsync(Request("w3", 1, Batch(run, "m", [1], [1])), Request("w3", 5, Batch(run, "m", [5], [5]))));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("next seq must be 2", e.Status.Detail, StringComparison.Ordinal);
        var (steps, _, _) = await fixture.Server.Client.ReadSeriesAsync(run, "m");
        Assert.Equal([1L], steps);
    }

    [Fact]
    public async Task A_seq_gap_ends_the_stream_at_once_for_a_client_that_waits_for_each_ack_before_sending_more()
    {
        var run = await NewRunIdAsync();
        using var call = fixture.Server.Client.Ingest.Write();
        await call.RequestStream.WriteAsync(Request("w3b", 1, Batch(run, "m", [1], [1])));
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(1ul, call.ResponseStream.Current.DurableSeq);

        // The request stream stays open: the error must come without another request or a half-close.
        await call.RequestStream.WriteAsync(Request("w3b", 3, Batch(run, "m", [3], [3])));
        var e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("next seq must be 2", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_batches_are_rejected_one_by_one_and_the_good_ones_stored()
    {
        var run = await NewRunIdAsync();
        var unknownRun = Core.RunId.New();
        var mismatched = Batch(run, "bad-lengths", [1, 2, 3], [1.0]);
        var both = Batch(run, "both", [1], [1.0]);
        both.ValuesF32.Add(1f);
        var timestamps = Batch(run, "ts", [1, 2, 3], [1, 2, 3]);
        timestamps.TimestampsMs.AddRange([1, 2]);
        var acks = await SendAsync(Request("w4", 1,
            Batch(run, "good", [1, 2], [1.0, 2.0]),
            Batch(unknownRun, "loss", [1], [1.0]),
            mismatched,
            Batch(run, "", [1], [1.0]),
            both,
            timestamps,
            Batch("not-a-run", "loss", [1], [1.0]),
            new SeriesBatch { Key = new SeriesKey { RunId = run, Metric = "empty" } },
            Batch(run, "good", [3], [3.0], rank: "1")));

        var ack = Assert.Single(acks);
        Assert.Equal(1ul, ack.DurableSeq);
        var byIndex = ack.Rejected.ToDictionary(r => r.BatchIndex);
        Assert.Equal(new uint[] { 1, 2, 3, 4, 5, 6, 7 }, byIndex.Keys.Order());
        Assert.Equal((int)StatusCode.NotFound, byIndex[1].Code);
        Assert.Contains(unknownRun, byIndex[1].Message, StringComparison.Ordinal);
        Assert.Contains("3 steps but 1 values", byIndex[2].Message, StringComparison.Ordinal);
        Assert.Contains("metric", byIndex[3].Message, StringComparison.Ordinal);
        Assert.Contains("exactly one of values", byIndex[4].Message, StringComparison.Ordinal);
        Assert.Contains("2 timestamps_ms", byIndex[5].Message, StringComparison.Ordinal);
        Assert.Contains("'not-a-run' is not a run id", byIndex[6].Message, StringComparison.Ordinal);
        Assert.Contains("no points", byIndex[7].Message, StringComparison.Ordinal);
        Assert.All(ack.Rejected, r => Assert.Equal(1ul, r.Seq));

        var good = await fixture.Server.Client.ReadSeriesAsync(run, "good");
        var goodRank1 = await fixture.Server.Client.ReadSeriesAsync(run, "good", new Dictionary<string, string> { ["rank"] = "1" });
        Assert.Equal(new long[] { 1, 2 }, good.Steps);
        Assert.Equal(new long[] { 3 }, goodRank1.Steps);
        var missing = await Assert.ThrowsAsync<RpcException>(() => fixture.Server.Client.ReadSeriesAsync(run, "bad-lengths"));
        Assert.Equal(StatusCode.NotFound, missing.StatusCode);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("slash/writer")]
    public async Task A_bad_writer_id_ends_the_stream_with_invalid_argument(string writer)
    {
        var run = await NewRunIdAsync();
        var e = await Assert.ThrowsAsync<RpcException>(() => SendAsync(Request(writer, 1, Batch(run, "m", [1], [1]))));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("writer_id", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Malformed_protobuf_bytes_end_the_stream_with_an_error_and_store_nothing()
    {
        var run = await NewRunIdAsync();
        await SendAsync(Request("w-raw", 1, Batch(run, "m", [1], [1.0])));

        // A raw byte-level client on the same method: a length prefix that runs past the message.
        var raw = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "metricstore.v1.IngestService", "Write",
            Marshallers.Create<byte[]>(b => b, b => b), Marshallers.Create<byte[]>(b => b, b => b));
        using (var channel = global::Grpc.Net.Client.GrpcChannel.ForAddress(fixture.Server.Server.GrpcAddress))
        {
            using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(raw, null, new CallOptions());
            await call.RequestStream.WriteAsync([0x0A, 0x7F, 0x41]); // field 1, length 127, 1 byte of data
            var e = await Assert.ThrowsAsync<RpcException>(async () =>
            {
                await call.RequestStream.CompleteAsync();
                await call.ResponseStream.MoveNext(CancellationToken.None);
            });
            Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
            Assert.Contains("malformed WriteRequest", e.Status.Detail, StringComparison.Ordinal);
        }

        var (steps, _, _) = await fixture.Server.Client.ReadSeriesAsync(run, "m");
        Assert.Equal(new long[] { 1 }, steps);
    }

    [Fact]
    public async Task Float32_values_are_stored_exactly()
    {
        var run = await NewRunIdAsync();
        var batch = new SeriesBatch { Key = new SeriesKey { RunId = run, Metric = "f32" } };
        var floats = new[] { 0.1f, float.MaxValue, float.Epsilon, -3.75f, float.NaN, float.PositiveInfinity };
        batch.Steps.AddRange(Enumerable.Range(0, floats.Length).Select(i => (long)i));
        batch.ValuesF32.AddRange(floats);
        await SendAsync(Request("w5", 1, batch));
        var (_, values, _) = await fixture.Server.Client.ReadSeriesAsync(run, "f32");
        Assert.Equal(floats.Select(f => (double)f), values);
    }

    [Fact]
    public async Task Reading_a_series_streams_it_in_bounded_chunks()
    {
        var run = await NewRunIdAsync();
        var steps = Enumerable.Range(0, 10_000).Select(i => (long)i).ToArray();
        await SendAsync(Request("w6", 1, Batch(run, "big", steps, steps.Select(s => (double)s).ToArray())));
        using var call = fixture.Server.Client.Query.ReadSeries(new ReadSeriesRequest
        {
            Key = new SeriesKey { RunId = run, Metric = "big" },
            StartStep = 100,
            EndStep = 4099,
            MaxChunkPoints = 1000,
        });
        var chunks = new List<SeriesChunk>();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            chunks.Add(call.ResponseStream.Current);
        }

        Assert.Equal(4, chunks.Count);
        Assert.All(chunks, c => Assert.Equal(1000, c.Steps.Count));
        Assert.Equal(100, chunks[0].Steps[0]);
        Assert.Equal(4099, chunks[^1].Steps[^1]);
    }
}
