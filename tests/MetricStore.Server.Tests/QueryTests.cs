using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>QueryService over gRPC and HTTP on a real server: downsampling, compare, summaries, raw streams.</summary>
public sealed class QueryTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private async Task<string> NewRunAsync()
    {
        var name = Unique.Name("query");
        await fixture.Server.Client.CreateExperimentAsync(name);
        return (await fixture.Server.Client.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = name })).RunId;
    }

    private async Task WriteAsync(string runId, string metric, long[] steps, double[] values, string? rank = null)
    {
        var batch = new SeriesBatch { Key = new SeriesKey { RunId = runId, Metric = metric } };
        if (rank is not null)
        {
            batch.Key.Labels["rank"] = rank;
        }

        batch.Steps.AddRange(steps);
        batch.Values.AddRange(values);
        batch.TimestampsMs.Add(1_700_000_000_000 + steps[^1]);
        var request = new WriteRequest { WriterId = Unique.Name("writer"), Seq = 1 };
        request.Batches.Add(batch);
        using var call = fixture.Server.Client.Ingest.Write();
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(1ul, call.ResponseStream.Current.DurableSeq);
    }

    private static (long[] Steps, double[] Values) Curve(int n, Func<long, double> f)
    {
        var steps = Enumerable.Range(0, n).Select(i => (long)i).ToArray();
        return (steps, steps.Select(f).ToArray());
    }

    [Fact]
    public async Task Compare_reads_several_runs_on_the_same_bucket_edges()
    {
        var a = await NewRunAsync();
        var b = await NewRunAsync();
        var withoutMetric = await NewRunAsync();
        var (steps, values) = Curve(10_000, s => 1.0 / (s + 1));
        await WriteAsync(a, "train/loss", steps, values);
        await WriteAsync(b, "train/loss", steps[..5_000], values[..5_000].Select(v => v * 2).ToArray());
        await WriteAsync(b, "train/loss", [7_777], [42]); // a spike in a gap
        await WriteAsync(withoutMetric, "other", [1], [1]);

        var request = new ReadDownsampledRequest { Metric = "train/loss", Buckets = 100 };
        request.RunIds.AddRange([a, b, withoutMetric]);
        var response = await fixture.Server.Client.Query.ReadDownsampledAsync(request);

        // Range 0..0 = the union of the runs' ranges: 0..9999 in 100 buckets of 100 steps.
        Assert.Equal((0L, 9_999L, 100L), (response.StartStep, response.EndStep, response.BucketWidth));
        Assert.Equal([a, b, withoutMetric], response.Series.Select(s => s.RunId));
        var sa = response.Series[0];
        Assert.Equal(100, sa.Count.Count);
        Assert.All(sa.Count, c => Assert.Equal(100, c));
        Assert.Equal(values[..100].Max(), sa.Max[0]);
        Assert.Equal(values[..100].Average(), sa.Mean[0], 12);
        Assert.Equal((0L, 99L, 99L, values[99]), (sa.FirstStep[0], sa.LastStep[0], sa.MinStep[0], sa.LastValue[0]));

        // Run b: 50 full buckets, then only the spike's bucket (empty buckets are left out).
        var sb = response.Series[1];
        Assert.Equal(51, sb.Count.Count);
        Assert.Equal((7_700L, 7_799L, 1L, 42.0), (sb.BucketStartStep[50], sb.BucketEndStep[50], sb.Count[50], sb.Max[50]));
        Assert.Empty(response.Series[2].Count);
    }

    [Fact]
    public async Task Downsampled_json_is_columns_for_a_chart_and_nan_is_a_string()
    {
        var run = await NewRunAsync();
        await WriteAsync(run, "acc", [0, 1, 2, 3], [0.5, double.NaN, 0.7, double.PositiveInfinity]);
        var response = await fixture.Server.Http.PostAsJsonAsync("/v1/query/downsampled", new { run_ids = new[] { run }, metric = "acc", buckets = 2, lttb_points = 3 });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var series = JsonDocument.Parse(text).RootElement.GetProperty("series")[0];
        Assert.Equal("[0,2]", series.GetProperty("bucketStartStep").GetRawText());
        Assert.Equal("[2,2]", series.GetProperty("count").GetRawText());
        Assert.Equal("[1,0]", series.GetProperty("nanCount").GetRawText());
        Assert.Equal("[0,1]", series.GetProperty("infCount").GetRawText());
        Assert.Equal("[0.5,0.7]", series.GetProperty("mean").GetRawText());
        Assert.Equal("[\"NaN\",\"Infinity\"]", series.GetProperty("lastValue").GetRawText());
        Assert.Equal("[0,2]", series.GetProperty("lttbSteps").GetRawText()); // the finite points
    }

    [Fact]
    public async Task Summaries_follow_a_resumed_run_that_relogs_steps()
    {
        var run = await NewRunAsync();
        await WriteAsync(run, "loss", [0, 1, 2, 3], [4, 3, 2, 1]);
        await WriteAsync(run, "loss", [2, 3], [10, 0.5]); // resumed from the checkpoint at step 2
        await WriteAsync(run, "lr", [0], [0.01], rank: "0");

        var list = await fixture.Server.Client.Query.ListMetricsAsync(new ListMetricsRequest { RunId = run });
        Assert.Equal(["loss", "lr"], list.Summaries.Select(s => s.Key.Metric));
        var loss = list.Summaries[0];
        Assert.Equal((4L, 0L, 3L, 0.5, 0.5, 10.0), (loss.Count, loss.FirstStep, loss.LastStep, loss.LastValue, loss.Min, loss.Max));
        Assert.Equal(1_700_000_000_003, loss.LastTimestampMs);
        Assert.Equal("0", list.Summaries[1].Key.Labels["rank"]);

        var latest = await fixture.Server.Http.PostAsJsonAsync("/v1/query/latest", new { run_ids = new[] { run }, metrics = new[] { "loss" } });
        var json = JsonDocument.Parse(await latest.Content.ReadAsStringAsync()).RootElement.GetProperty("summaries");
        Assert.Equal(1, json.GetArrayLength());
        Assert.Equal(0.5, json[0].GetProperty("lastValue").GetDouble());

        var http = await fixture.Server.Http.GetStringAsync($"/v1/runs/{run}/metrics");
        Assert.Equal(2, JsonDocument.Parse(http).RootElement.GetProperty("summaries").GetArrayLength());
    }

    [Fact]
    public async Task Raw_points_stream_as_arrow_ipc_and_as_json()
    {
        var run = await NewRunAsync();
        var (steps, values) = Curve(200_000, s => Math.Sin(s));
        values[5] = double.NaN;
        await WriteAsync(run, "train/loss", steps, values, rank: "1");
        await fixture.Server.Server.Storage.SealNowAsync();
        await WriteAsync(run, "train/loss", [200_000], [1.5], rank: "1"); // one point still in the head

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/query/points?run_id={run}&metric=train%2Floss&label.rank=1&start_step=3&max_chunk_points=50000");
        request.Headers.Accept.ParseAdd("application/vnd.apache.arrow.stream");
        using var response = await fixture.Server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        Assert.Equal("application/vnd.apache.arrow.stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new ArrowStreamReader(await response.Content.ReadAsStreamAsync());
        Assert.Equal(["step", "value", "timestamp_ms"], reader.Schema.FieldsList.Select(f => f.Name));
        var readSteps = new List<long>();
        var readValues = new List<double>();
        var batches = 0;
        while (await reader.ReadNextRecordBatchAsync() is { } batch)
        {
            using (batch)
            {
                batches++;
                Assert.True(batch.Length <= 50_000);
                readSteps.AddRange(((Int64Array)batch.Column(0)).Values.ToArray());
                readValues.AddRange(((DoubleArray)batch.Column(1)).Values.ToArray());
            }
        }

        Assert.Equal(Enumerable.Range(3, 199_998).Select(i => (long)i), readSteps);
        Assert.Equal(values[3..].Append(1.5), readValues);
        Assert.True(batches >= 5, $"{batches} record batches");

        var json = JsonDocument.Parse(await fixture.Server.Http.GetStringAsync($"/v1/query/points?run_id={run}&metric=train%2Floss&label.rank=1&start_step=4&end_step=6&max_chunk_points=2")).RootElement;
        var chunks = json.GetProperty("chunks");
        Assert.Equal(2, chunks.GetArrayLength()); // streamed a chunk at a time
        Assert.Equal("[4,5]", chunks[0].GetProperty("steps").GetRawText());
        Assert.Equal($"[{values[4]:R},\"NaN\"]", chunks[0].GetProperty("values").GetRawText());
        Assert.Equal("[6]", chunks[1].GetProperty("steps").GetRawText());
        Assert.Equal(1, chunks[1].GetProperty("timestamps_ms").GetArrayLength());
    }

    private async Task<(List<string> Names, List<IArrowType> Types, List<long> Steps, List<double> Values)> ReadArrowAsync(string query)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/query/points?" + query);
        request.Headers.Accept.ParseAdd("application/vnd.apache.arrow.stream");
        using var response = await fixture.Server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        using var reader = new ArrowStreamReader(await response.Content.ReadAsStreamAsync());
        var (steps, values) = (new List<long>(), new List<double>());
        var names = reader.Schema.FieldsList.Select(f => f.Name).ToList();
        var types = reader.Schema.FieldsList.Select(f => f.DataType).ToList();
        while (await reader.ReadNextRecordBatchAsync() is { } batch)
        {
            using (batch)
            {
                for (var c = 0; c < batch.ColumnCount; c++)
                {
                    switch (names[c], batch.Column(c))
                    {
                        case ("step", Int64Array a):
                            steps.AddRange(a.Values.ToArray());
                            break;
                        case ("value", FloatArray a):
                            values.AddRange(a.Values.ToArray().Select(f => (double)f));
                            break;
                        case ("value", DoubleArray a):
                            values.AddRange(a.Values.ToArray());
                            break;
                    }
                }
            }
        }

        return (names, types, steps, values);
    }

    [Fact]
    public async Task Arrow_reads_pick_columns_and_send_float32_values_only_when_every_value_fits()
    {
        var run = await NewRunAsync();
        var (steps, values) = Curve(100_000, s => (float)(1.0 / (s + 1)));
        values[7] = double.NaN;
        await WriteAsync(run, "f", steps, values);
        await fixture.Server.Server.Storage.SealNowAsync();
        await WriteAsync(run, "f", [100_000, 100_001], [0.5, 0.1]); // 0.1 is not a float32; 0.5 is

        // The sealed part fits float32: 4-byte values, exactly as written, no timestamp column.
        var sealedPart = await ReadArrowAsync($"run_id={run}&metric=f&end_step=100000&columns=step,value&value_type=auto&max_chunk_points=30000");
        Assert.Equal(["step", "value"], sealedPart.Names);
        Assert.Equal(ArrowTypeId.Float, sealedPart.Types[1].TypeId);
        Assert.Equal(steps.Append(100_000), sealedPart.Steps);
        Assert.Equal(values.Append(0.5), sealedPart.Values);

        // With 0.1 in the range the values stay float64; the default is float64 whatever the values.
        var whole = await ReadArrowAsync($"run_id={run}&metric=f&columns=step,value&value_type=auto");
        Assert.Equal(ArrowTypeId.Double, whole.Types[1].TypeId);
        Assert.Equal(values.Append(0.5).Append(0.1), whole.Values);
        var byDefault = await ReadArrowAsync($"run_id={run}&metric=f&end_step=10");
        Assert.Equal(["step", "value", "timestamp_ms"], byDefault.Names);
        Assert.Equal(ArrowTypeId.Double, byDefault.Types[1].TypeId);

        // Columns come in the order asked; JSON honours them too.
        var reordered = await ReadArrowAsync($"run_id={run}&metric=f&end_step=10&columns=value,timestamp_ms");
        Assert.Equal(["value", "timestamp_ms"], reordered.Names);
        Assert.Equal(values[..11], reordered.Values);
        var json = JsonDocument.Parse(await fixture.Server.Http.GetStringAsync($"/v1/query/points?run_id={run}&metric=f&start_step=100001&columns=step,value")).RootElement;
        var chunk = json.GetProperty("chunks")[0];
        Assert.Equal(["steps", "values"], chunk.EnumerateObject().Select(p => p.Name));
        Assert.Equal("[100001]", chunk.GetProperty("steps").GetRawText());

        foreach (var (query, message) in new[]
        {
            ("columns=step,foo", "columns 'step,foo': unknown column 'foo'"),
            ("columns=step,step", "columns 'step,step': 'step' is listed twice"),
            ("columns=", null),
            ("value_type=float16", "value_type 'float16' is not one of float64, auto"),
        })
        {
            var response = await fixture.Server.Http.GetAsync($"/v1/query/points?run_id={run}&metric=f&format=arrow&{query}");
            if (message is null)
            {
                Assert.True(response.IsSuccessStatusCode, query); // an empty list means every column
                continue;
            }

            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Contains(message, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_float32_arrow_stream_ends_before_a_value_that_does_not_fit()
    {
        // A value that does not fit can only turn up when it was written into the range after the
        // check; the stream then ends before it rather than send it rounded.
        var columns = new MetricStore.Storage.SeriesColumns(6);
        double[] values = [1, 2, 3, 0.1, 5, 6];
        for (var i = 0; i < 6; i++)
        {
            (columns.Steps[i], columns.Values[i], columns.Timestamps[i]) = (i, values[i], 1000 + i);
        }

        async IAsyncEnumerable<MetricStore.Storage.PointSlice> Slices()
        {
            yield return new(columns, 0, 2);
            await Task.Yield();
            yield return new(columns, 2, 4);
        }

        using var output = new MemoryStream();
        await MetricStore.Server.Http.PointsEndpoint.WriteArrowAsync(output, Slices(), MetricStore.Server.Http.PointsEndpoint.AllColumns, float32: true, CancellationToken.None);
        output.Position = 0;
        using var reader = new ArrowStreamReader(output);
        var (steps, read) = (new List<long>(), new List<float>());
        while (await reader.ReadNextRecordBatchAsync() is { } batch)
        {
            using (batch)
            {
                steps.AddRange(((Int64Array)batch.Column(0)).Values.ToArray());
                read.AddRange(((FloatArray)batch.Column(1)).Values.ToArray());
                Assert.Equal(batch.Length, ((Int64Array)batch.Column(2)).Length);
            }
        }

        Assert.Equal([0L, 1, 2], steps);
        Assert.Equal([1f, 2, 3], read);
    }

    [Fact]
    public async Task Grpc_reads_come_in_bounded_chunks()
    {
        var run = await NewRunAsync();
        var (steps, values) = Curve(2_500, s => s);
        await WriteAsync(run, "m", steps, values);
        using var call = fixture.Server.Client.Query.ReadSeries(new ReadSeriesRequest { Key = new SeriesKey { RunId = run, Metric = "m" }, MaxChunkPoints = 1_000 });
        var sizes = new List<int>();
        var (readSteps, readValues, readTimestamps) = (new List<long>(), new List<double>(), new List<long>());
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            // The server reuses one message for every chunk: each must hold only its own points, in every column.
            var chunk = call.ResponseStream.Current;
            sizes.Add(chunk.Steps.Count);
            Assert.Equal((chunk.Steps.Count, chunk.Steps.Count), (chunk.Values.Count, chunk.TimestampsMs.Count));
            readSteps.AddRange(chunk.Steps);
            readValues.AddRange(chunk.Values);
            readTimestamps.AddRange(chunk.TimestampsMs);
        }

        Assert.Equal([1_000, 1_000, 500], sizes);
        Assert.Equal(steps, readSteps);
        Assert.Equal(values, readValues);
        Assert.All(readTimestamps, t => Assert.Equal(1_700_000_000_000 + steps[^1], t)); // WriteAsync sends one timestamp for the batch
    }

    [Fact]
    public async Task Bad_query_input_is_refused_naming_the_field_and_value()
    {
        var run = await NewRunAsync();
        await WriteAsync(run, "m", [1], [1]);
        async Task<RpcException> Refused(ReadDownsampledRequest request) =>
            await Assert.ThrowsAsync<RpcException>(async () => await fixture.Server.Client.Query.ReadDownsampledAsync(request));

        var noBuckets = await Refused(new ReadDownsampledRequest { RunIds = { run }, Metric = "m" });
        Assert.Equal((StatusCode.InvalidArgument, "buckets 0 is out of range; give 1..10000"), (noBuckets.StatusCode, noBuckets.Status.Detail));
        var line = await Refused(new ReadDownsampledRequest { RunIds = { run }, Metric = "m", Buckets = 10, LttbPoints = 2 });
        Assert.Contains("lttb_points 2", line.Status.Detail, StringComparison.Ordinal);
        var backwards = await Refused(new ReadDownsampledRequest { RunIds = { run }, Metric = "m", Buckets = 10, StartStep = 5, EndStep = 4 });
        Assert.Equal("end_step 4 is before start_step 5", backwards.Status.Detail);
        var repeated = await Refused(new ReadDownsampledRequest { RunIds = { run, run }, Metric = "m", Buckets = 10 });
        Assert.Contains("run_ids[1]", repeated.Status.Detail, StringComparison.Ordinal);
        var unknown = await Refused(new ReadDownsampledRequest { RunIds = { new string('a', 32) }, Metric = "m", Buckets = 10 });
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("run_ids[0]", unknown.Status.Detail, StringComparison.Ordinal);

        var http = await fixture.Server.Http.GetAsync($"/v1/query/points?run_id={run}&metric=m&start_step=x");
        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Contains("start_step 'x' is not an integer", await http.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var missing = await fixture.Server.Http.GetAsync($"/v1/query/points?run_id={run}&metric=nope");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var tooMany = await Assert.ThrowsAsync<RpcException>(async () => await fixture.Server.Client.Query.LatestValuesAsync(new LatestValuesRequest()));
        Assert.Contains("run_ids has 0 runs", tooMany.Status.Detail, StringComparison.Ordinal);
    }
}
