using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>
/// A connection to a MetricStore server. Thread-safe; create one per process and share it.
/// Errors surface as <see cref="RpcException"/> whose status names what was wrong
/// (e.g. AlreadyExists for a conflicting param, NotFound for an unknown run).
/// </summary>
public sealed partial class MetricStoreClient : IDisposable
{
    private readonly GrpcChannel _channel;

    /// <summary>Connects to <paramref name="url"/>, or to METRICSTORE_URL, or to http://127.0.0.1:50051.</summary>
    public MetricStoreClient(string? url = null)
        : this(url is null ? new MetricStoreClientOptions() : new MetricStoreClientOptions { Address = MetricStoreClientOptions.Parse(url) })
    {
    }

    public MetricStoreClient(MetricStoreClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _channel = MetricStoreChannel.Create(options.Address);
        // With a token, every call carries it (servers started with --auth require one).
        var invoker = string.IsNullOrEmpty(options.Token) && string.IsNullOrEmpty(options.User)
            ? _channel.CreateCallInvoker()
            : _channel.Intercept(metadata =>
            {
                if (!string.IsNullOrEmpty(options.Token))
                {
                    metadata.Add("authorization", "Bearer " + options.Token);
                }

                if (!string.IsNullOrEmpty(options.User))
                {
                    metadata.Add("x-metricstore-user", options.User);
                }

                return metadata;
            });
        Tracking = new TrackingService.TrackingServiceClient(invoker);
        Ingest = new IngestService.IngestServiceClient(invoker);
        Query = new QueryService.QueryServiceClient(invoker);
        Artifacts = new ArtifactService.ArtifactServiceClient(invoker);
        Registry = new RegistryService.RegistryServiceClient(invoker);
    }

    public MetricStoreClientOptions Options { get; }

    /// <summary>The generated tracking client, for calls this class does not wrap.</summary>
    public TrackingService.TrackingServiceClient Tracking { get; }

    /// <summary>The generated ingest client (runs log through <see cref="ActiveRun.Log(string, long, double)"/>).</summary>
    public IngestService.IngestServiceClient Ingest { get; }

    /// <summary>The generated query client.</summary>
    public QueryService.QueryServiceClient Query { get; }

    /// <summary>The generated registry client (pulling a model goes through <see cref="PullModelAsync"/>).</summary>
    public RegistryService.RegistryServiceClient Registry { get; }

    /// <summary>The generated artifact client (uploads and downloads go through the methods of this class).</summary>
    public ArtifactService.ArtifactServiceClient Artifacts { get; }

    /// <summary>
    /// Reads every point of a series, in step order (last write of each step), following the
    /// server's chunks.
    /// </summary>
    public async Task<(long[] Steps, double[] Values, long[] TimestampsMs)> ReadSeriesAsync(
        string runId, string metric, IReadOnlyDictionary<string, string>? labels = null, CancellationToken cancellationToken = default)
    {
        var key = new SeriesKey { RunId = runId, Metric = metric };
        AddAll(key.Labels, labels);
        using var call = Query.ReadSeries(new ReadSeriesRequest { Key = key }, cancellationToken: cancellationToken);
        var steps = new List<long>();
        var values = new List<double>();
        var timestamps = new List<long>();
        while (await call.ResponseStream.MoveNext(cancellationToken))
        {
            var chunk = call.ResponseStream.Current;
            steps.AddRange(chunk.Steps);
            values.AddRange(chunk.Values);
            timestamps.AddRange(chunk.TimestampsMs);
        }

        return ([.. steps], [.. values], [.. timestamps]);
    }

    /// <summary>
    /// Attaches to a run another process started (e.g. rank k of a distributed job, where rank 0
    /// started the run), to log metrics under the given labels such as {"rank": "3"}. Disposing an
    /// attached run flushes its metrics but does not end the run: its owner does.
    /// </summary>
    public async Task<ActiveRun> AttachRunAsync(string runId, IReadOnlyDictionary<string, string>? labels = null, CancellationToken cancellationToken = default)
    {
        var run = await GetRunAsync(runId, cancellationToken);
        return new ActiveRun(this, run, new RunScope { Closed = true }, ownsLifecycle: false, labels);
    }

    internal CallOptions Call(CancellationToken cancellationToken) =>
        new(deadline: DateTime.UtcNow + Options.CallTimeout, cancellationToken: cancellationToken);

    public async Task<Experiment> CreateExperimentAsync(
        string name, string? description = null, IReadOnlyDictionary<string, string>? tags = null, CancellationToken cancellationToken = default)
    {
        var request = new CreateExperimentRequest { Name = name, Description = description ?? "" };
        AddAll(request.Tags, tags);
        return await Tracking.CreateExperimentAsync(request, Call(cancellationToken));
    }

    public async Task<Experiment> GetExperimentAsync(string name, CancellationToken cancellationToken = default) =>
        await Tracking.GetExperimentAsync(new GetExperimentRequest { Name = name }, Call(cancellationToken));

    /// <summary>Returns the experiment with this name, creating it when missing (safe under races).</summary>
    public async Task<Experiment> GetOrCreateExperimentAsync(string name, CancellationToken cancellationToken = default)
    {
        try
        {
            return await GetExperimentAsync(name, cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound)
        {
        }

        try
        {
            return await CreateExperimentAsync(name, cancellationToken: cancellationToken);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.AlreadyExists)
        {
            return await GetExperimentAsync(name, cancellationToken);
        }
    }

    /// <summary>Every experiment, following pages.</summary>
    public async Task<IReadOnlyList<Experiment>> ListExperimentsAsync(CancellationToken cancellationToken = default)
    {
        var all = new List<Experiment>();
        var token = "";
        do
        {
            var page = await Tracking.ListExperimentsAsync(new ListExperimentsRequest { PageSize = 1000, PageToken = token }, Call(cancellationToken));
            all.AddRange(page.Experiments);
            token = page.NextPageToken;
        }
        while (token.Length > 0);
        return all;
    }

    /// <summary>Every run of an experiment, newest first, following pages.</summary>
    public async Task<IReadOnlyList<Run>> ListRunsAsync(string experimentName, CancellationToken cancellationToken = default)
    {
        var all = new List<Run>();
        var token = "";
        do
        {
            var page = await Tracking.ListRunsAsync(
                new ListRunsRequest { ExperimentName = experimentName, PageSize = 1000, PageToken = token }, Call(cancellationToken));
            all.AddRange(page.Runs);
            token = page.NextPageToken;
        }
        while (token.Length > 0);
        return all;
    }

    public async Task<Run> GetRunAsync(string runId, CancellationToken cancellationToken = default) =>
        await Tracking.GetRunAsync(new GetRunRequest { RunId = runId }, Call(cancellationToken));

    public async Task<Run> EndRunAsync(string runId, RunStatus status, CancellationToken cancellationToken = default) =>
        await Tracking.EndRunAsync(new EndRunRequest { RunId = runId, Status = status }, Call(cancellationToken));

    /// <summary>
    /// Starts a run in <paramref name="experiment"/> (created when missing) and returns it for
    /// logging. Use it with <c>await using</c>; see <see cref="ActiveRun.DisposeAsync"/> for how a
    /// run that was not ended explicitly ends.
    /// </summary>
    /// <remarks>
    /// Not an async method on purpose: it marks the caller's async flow so that an exception thrown
    /// there before the run is disposed can be told apart (an async method's marks do not reach its caller).
    /// </remarks>
    public Task<ActiveRun> StartRunAsync(
        string experiment,
        string? name = null,
        IReadOnlyDictionary<string, string>? parameters = null,
        RunStartOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var scope = ActiveRun.EnterScope();
        return StartRunCoreAsync(experiment, name, parameters, options, scope, cancellationToken);
    }

    private async Task<ActiveRun> StartRunCoreAsync(
        string experiment, string? name, IReadOnlyDictionary<string, string>? parameters, RunStartOptions? options, RunScope scope, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(experiment);
        var capture = Options.Capture.Any
            ? await SourceCapture.CaptureAsync(Options.Capture, cancellationToken)
            : new CaptureResult(new SourceInfo(), [], []);
        var request = new CreateRunRequest
        {
            ExperimentName = experiment,
            Name = name ?? "",
            ParentRunId = options?.ParentRunId ?? "",
            Source = options?.Source ?? capture.Source,
        };
        AddAll(request.Params, parameters);
        AddAll(request.Params, options?.Inputs?.ToParams());
        AddAll(request.Tags, options?.Tags);
        if (options?.Hypothesis is { } hypothesis)
        {
            request.Note = new Note { Hypothesis = hypothesis };
        }

        Run run;
        try
        {
            run = await Tracking.CreateRunAsync(request, Call(cancellationToken));
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.NotFound && e.Status.Detail.StartsWith("experiment", StringComparison.Ordinal))
        {
            await GetOrCreateExperimentAsync(experiment, cancellationToken);
            run = await Tracking.CreateRunAsync(request, Call(cancellationToken));
        }

        var warnings = new List<string>(capture.Warnings);
        await AttachCapturedAsync(run.RunId, capture, warnings, cancellationToken);
        return new ActiveRun(this, run, scope, ownsLifecycle: true, options?.Labels, warnings);
    }

    /// <summary>Uploads the captured files; a failure becomes a warning (and a tag on the run), never an error of the run.</summary>
    private async Task AttachCapturedAsync(string runId, CaptureResult capture, List<string> warnings, CancellationToken cancellationToken)
    {
        foreach (var (path, bytes) in capture.Artifacts)
        {
            try
            {
                await UploadArtifactAsync(runId, path, new MemoryStream(bytes, writable: false), cancellationToken);
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidDataException)
            {
                warnings.Add($"upload of {path}: {(e is RpcException rpc ? rpc.Status.Detail : e.Message)}");
            }
        }

        if (warnings.Count == 0)
        {
            return;
        }

        foreach (var warning in warnings)
        {
            Trace.TraceWarning("MetricStore capture: {0}", warning);
        }

        try
        {
            var text = string.Join('\n', warnings);
            var request = new SetTagsRequest { RunId = runId };
            request.Tags[ActiveRun.CaptureWarningsTag] = text.Length <= 8000 ? text : text[..7999] + "…";
            await Tracking.SetTagsAsync(request, Call(cancellationToken));
        }
        catch (RpcException e)
        {
            Trace.TraceWarning("MetricStore capture: could not tag the run with the capture warnings: {0}", e.Status.Detail);
        }
    }

    public void Dispose() => _channel.Dispose();

    internal static void AddAll(Google.Protobuf.Collections.MapField<string, string> target, IReadOnlyDictionary<string, string>? source)
    {
        if (source is null)
        {
            return;
        }

        foreach (var (key, value) in source)
        {
            target[key] = value;
        }
    }
}

/// <summary>Optional settings of a new run.</summary>
public sealed record RunStartOptions
{
    public IReadOnlyDictionary<string, string>? Tags { get; init; }

    /// <summary>The run this one resumes or forks.</summary>
    public string? ParentRunId { get; init; }

    /// <summary>The note's hypothesis, markdown.</summary>
    public string? Hypothesis { get; init; }

    /// <summary>Labels added to every metric this process logs, e.g. {"rank": "0"}.</summary>
    public IReadOnlyDictionary<string, string>? Labels { get; init; }

    /// <summary>Replaces the captured source fields (tests, or jobs that know better); captured files still follow <see cref="MetricStoreClientOptions.Capture"/>.</summary>
    public SourceInfo? Source { get; init; }

    /// <summary>The seed and dataset identifiers, recorded as <c>inputs/…</c> params (see <see cref="RunInputs"/>).</summary>
    public RunInputs? Inputs { get; init; }
}
