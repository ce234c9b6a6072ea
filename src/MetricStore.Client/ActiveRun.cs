using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Grpc.Core;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>
/// A RUNNING run that this process logs to. Not thread-safe for concurrent calls that depend on
/// each other's order; each call is one request to the server.
/// </summary>
/// <remarks>
/// <para>
/// <b>How a run ends when it is disposed without <see cref="EndAsync"/>.</b> .NET gives
/// <c>DisposeAsync</c> no sight of an exception that is leaving the <c>await using</c> block, so the
/// client watches instead: it records any exception thrown in the async flow that started the run
/// (including code it awaits) after the last call on the run. If one is recorded when the run is
/// disposed, the run ends FAILED and gets the tag <c>metricstore.failure</c> with the exception's
/// type and message; otherwise it ends FINISHED. An exception that your code caught and handled
/// counts too unless a call on the run follows it. Call <see cref="EndAsync"/> when the outcome
/// must be exact.
/// </para>
/// <para>
/// When the run ends FAILED on dispose, errors from the server are swallowed (written to
/// <see cref="Trace"/>) so they do not hide your exception; when it ends FINISHED they are thrown.
/// </para>
/// </remarks>
public sealed class ActiveRun : IAsyncDisposable
{
    /// <summary>The tag a run gets when part of the automatic capture failed: one line per failure.</summary>
    public const string CaptureWarningsTag = "metricstore.capture_warnings";

    /// <summary>The tag that a run failed on dispose carries: "ExceptionType: message".</summary>
    public const string FailureTag = "metricstore.failure";

    private static readonly AsyncLocal<RunScope?> s_scope = new();
    private static readonly AsyncLocal<bool> s_inClientCall = new();

    private readonly MetricStoreClient _client;
    private readonly RunScope _scope;
    private readonly bool _ownsLifecycle;
    private readonly IReadOnlyDictionary<string, string>? _labels;
    private readonly string _labelsText;
    private readonly Lock _senderLock = new();
    private MetricSender? _sender;
    private int _ended;

    static ActiveRun()
    {
        AppDomain.CurrentDomain.FirstChanceException += OnFirstChanceException;
    }

    internal ActiveRun(MetricStoreClient client, Run run, RunScope scope, bool ownsLifecycle, IReadOnlyDictionary<string, string>? labels, IReadOnlyList<string>? captureWarnings = null)
    {
        CaptureWarnings = captureWarnings ?? [];
        _client = client;
        _scope = scope;
        _ownsLifecycle = ownsLifecycle;
        _labels = labels is { Count: > 0 } ? new Dictionary<string, string>(labels, StringComparer.Ordinal) : null;
        _labelsText = MetricSender.LabelsText(_labels);
        Info = run;
    }

    /// <summary>Parts of the automatic capture that failed at start (no git, a command timed out, ...); the run went on without them.</summary>
    public IReadOnlyList<string> CaptureWarnings { get; }

    /// <summary>Batches of metric points the server refused, with its reasons (the last 100).</summary>
    public IReadOnlyList<string> MetricRejections => _sender?.Rejections ?? [];

    /// <summary>The ingest writer id of this run's metric stream (null before the first Log).</summary>
    public string? MetricWriterId => _sender?.WriterId;

    /// <summary>
    /// Logs a point. Returns at once: points are buffered per series and streamed in the
    /// background. Blocks only when <see cref="MetricLoggingOptions.MaxPendingPoints"/> points are
    /// waiting for the server (see <see cref="MetricLoggingOptions"/>). Logging a step again
    /// replaces its value (last write wins), which is how a resumed job re-logs steps.
    /// </summary>
    public void Log(string metric, long step, double value) => LogCore(metric, step, value, float32: false, null);

    /// <summary>Logs a float32 point; a series logged only with floats is sent and stored 4 bytes wide, losslessly.</summary>
    public void Log(string metric, long step, float value) => LogCore(metric, step, value, float32: true, null);

    /// <summary>
    /// Logs a point of the series with these labels (merged over the run's labels), e.g. {"rank": "3"}.
    /// Labels given per call cost a small allocation per point; labels that hold for the whole
    /// process belong in <see cref="RunStartOptions.Labels"/> or <see cref="MetricStoreClient.AttachRunAsync"/>, which cost none.
    /// </summary>
    public void Log(string metric, long step, double value, IReadOnlyDictionary<string, string> labels) => LogCore(metric, step, value, float32: false, labels);

    /// <summary>Logs several metrics at one step.</summary>
    public void Log(long step, IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        foreach (var (metric, value) in metrics)
        {
            LogCore(metric, step, value, float32: false, null);
        }
    }

    /// <summary>Sends buffered points and waits until the server has made all of them durable.</summary>
    public Task FlushAsync(CancellationToken cancellationToken = default) =>
        _sender is { } sender ? sender.FlushAsync(cancellationToken) : Task.CompletedTask;

    private void LogCore(string metric, long step, double value, bool float32, IReadOnlyDictionary<string, string>? labels)
    {
        if (!IsValidMetric(metric))
        {
            throw new ArgumentException($"metric name '{metric}' is not valid: 1..250 characters, no control characters", nameof(metric));
        }

        if (IsEnded)
        {
            throw new InvalidOperationException($"run {Id} has ended; start a new run (or resume this one with RunStartOptions.ParentRunId) to log more");
        }

        _scope.LastException = null;
        var sender = _sender ?? CreateSender();
        if (labels is null || labels.Count == 0)
        {
            sender.Log(metric, _labelsText, _labels, step, value, float32); // the per-point path: no allocation
        }
        else
        {
            var merged = Merge(labels);
            sender.Log(metric, MetricSender.LabelsText(merged), merged, step, value, float32);
        }
    }

    private static bool IsValidMetric(string metric)
    {
        if (string.IsNullOrEmpty(metric) || metric.Length > 250)
        {
            return false;
        }

        foreach (var c in metric)
        {
            if (char.IsControl(c))
            {
                return false;
            }
        }

        return true;
    }

    private IReadOnlyDictionary<string, string>? Merge(IReadOnlyDictionary<string, string>? labels)
    {
        if (labels is null || labels.Count == 0)
        {
            return _labels;
        }

        if (_labels is null)
        {
            return labels;
        }

        var merged = new Dictionary<string, string>(_labels, StringComparer.Ordinal);
        foreach (var (k, v) in labels)
        {
            merged[k] = v;
        }

        return merged;
    }

    private MetricSender CreateSender()
    {
        lock (_senderLock)
        {
            return _sender ??= new MetricSender(_client.Ingest, Id, _client.Options.Metrics);
        }
    }

    /// <summary>The run as the server created it.</summary>
    public Run Info { get; }

    public string Id => Info.RunId;

    public string Name => Info.Name;

    /// <summary>True once <see cref="EndAsync"/> or dispose has ended the run.</summary>
    public bool IsEnded => Volatile.Read(ref _ended) != 0;

    /// <summary>Logs one param. Params are immutable: a different value for a logged key is AlreadyExists.</summary>
    public Task LogParamAsync(string key, string value, CancellationToken cancellationToken = default) =>
        LogParamsAsync(new Dictionary<string, string> { [key] = value }, cancellationToken);

    /// <summary>Logs params, all or nothing.</summary>
    public async Task LogParamsAsync(IReadOnlyDictionary<string, string> parameters, CancellationToken cancellationToken = default)
    {
        EnterCall();
        var request = new LogParamsRequest { RunId = Id };
        MetricStoreClient.AddAll(request.Params, parameters);
        await _client.Tracking.LogParamsAsync(request, _client.Call(cancellationToken));
    }

    /// <summary>Sets (creates or overwrites) a tag.</summary>
    public Task SetTagAsync(string key, string value, CancellationToken cancellationToken = default) =>
        SetTagsAsync(new Dictionary<string, string> { [key] = value }, cancellationToken);

    public async Task SetTagsAsync(IReadOnlyDictionary<string, string> tags, CancellationToken cancellationToken = default)
    {
        EnterCall();
        var request = new SetTagsRequest { RunId = Id };
        MetricStoreClient.AddAll(request.Tags, tags);
        await _client.Tracking.SetTagsAsync(request, _client.Call(cancellationToken));
    }

    public async Task DeleteTagAsync(string key, CancellationToken cancellationToken = default)
    {
        EnterCall();
        await _client.Tracking.DeleteTagAsync(new DeleteTagRequest { RunId = Id, Key = key }, _client.Call(cancellationToken));
    }

    /// <summary>Sets the note's hypothesis and/or outcome (markdown); a null argument leaves that part as it is.</summary>
    public async Task<Note> SetNoteAsync(string? hypothesis = null, string? outcome = null, CancellationToken cancellationToken = default)
    {
        EnterCall();
        var request = new SetNoteRequest { RunId = Id };
        if (hypothesis is not null)
        {
            request.Hypothesis = hypothesis;
        }

        if (outcome is not null)
        {
            request.Outcome = outcome;
        }

        return await _client.Tracking.SetNoteAsync(request, _client.Call(cancellationToken));
    }

    /// <summary>Uploads a local file as an artifact of this run (path defaults to the file's name); see <see cref="MetricStoreClient.UploadFileAsync"/>.</summary>
    public async Task<ArtifactInfo> LogArtifactAsync(string localFile, string? path = null, CancellationToken cancellationToken = default)
    {
        EnterCall();
        return await _client.UploadFileAsync(Id, localFile, path, cancellationToken);
    }

    /// <summary>Uploads every file under a local directory, under <paramref name="pathPrefix"/>.</summary>
    public async Task<IReadOnlyList<ArtifactInfo>> LogArtifactsAsync(string localDirectory, string? pathPrefix = null, CancellationToken cancellationToken = default)
    {
        EnterCall();
        return await _client.UploadDirectoryAsync(Id, localDirectory, pathPrefix, cancellationToken);
    }

    /// <summary>Ends the run with FINISHED (default), FAILED or KILLED. Calling it again with the same status is a no-op.</summary>
    public async Task<Run> EndAsync(RunStatus status = RunStatus.Finished, CancellationToken cancellationToken = default)
    {
        EnterCall(allowEnded: true);
        await CloseMetricsAsync();
        var run = await _client.Tracking.EndRunAsync(new EndRunRequest { RunId = Id, Status = status }, _client.Call(cancellationToken));
        Volatile.Write(ref _ended, 1);
        _scope.Closed = true;
        return run;
    }

    /// <summary>
    /// Ends the run unless <see cref="EndAsync"/> already did: FAILED when an exception was thrown
    /// in the run's async flow after the last call on the run, else FINISHED (see the remarks of
    /// <see cref="ActiveRun"/>).
    /// </summary>
    public ValueTask DisposeAsync()
    {
        // Not async: clearing the mark here reaches the caller's flow, so later exceptions in it
        // are not attributed to a run that is gone.
        if (ReferenceEquals(s_scope.Value, _scope))
        {
            s_scope.Value = null;
        }

        var failure = _scope.LastException;
        _scope.Closed = true;
        if (!_ownsLifecycle)
        {
            return new ValueTask(CloseMetricsAsync());
        }

        if (Interlocked.Exchange(ref _ended, 1) != 0)
        {
            return ValueTask.CompletedTask;
        }

        return new ValueTask(EndOnDisposeAsync(failure));
    }

    internal static RunScope EnterScope()
    {
        var scope = new RunScope();
        s_scope.Value = scope;
        return scope;
    }

    /// <summary>Flushes and closes the metric stream; every logged point is durable when it returns.</summary>
    private async Task CloseMetricsAsync()
    {
        MetricSender? sender;
        lock (_senderLock)
        {
            sender = _sender;
        }

        if (sender is not null)
        {
            await sender.DisposeAsync();
        }
    }

    private async Task EndOnDisposeAsync(Exception? failure)
    {
        s_inClientCall.Value = true;
        if (failure is null)
        {
            await CloseMetricsAsync();
            await _client.Tracking.EndRunAsync(new EndRunRequest { RunId = Id, Status = RunStatus.Finished }, _client.Call(CancellationToken.None));
            return;
        }

        try
        {
            await CloseMetricsAsync();
            var reason = $"{failure.GetType().FullName}: {failure.Message}";
            var tags = new SetTagsRequest { RunId = Id };
            tags.Tags[FailureTag] = reason.Length > 8000 ? reason[..8000] : reason;
            await _client.Tracking.SetTagsAsync(tags, _client.Call(CancellationToken.None));
            await _client.Tracking.EndRunAsync(new EndRunRequest { RunId = Id, Status = RunStatus.Failed }, _client.Call(CancellationToken.None));
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException)
        {
            Trace.TraceWarning($"MetricStore: could not mark run {Id} FAILED after {failure.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>A call on the run shows the code went on after any earlier exception.</summary>
    private void EnterCall(bool allowEnded = false)
    {
        if (!allowEnded && IsEnded)
        {
            throw new InvalidOperationException($"run {Id} has ended; start a new run (or resume this one with RunStartOptions.ParentRunId) to log more");
        }

        s_inClientCall.Value = true;
        _scope.LastException = null;
    }

    private static void OnFirstChanceException(object? sender, FirstChanceExceptionEventArgs e)
    {
        if (s_inClientCall.Value)
        {
            return;
        }

        var scope = s_scope.Value;
        if (scope is { Closed: false })
        {
            scope.LastException = e.Exception;
        }
    }
}

/// <summary>The async flow that started a run, and the last exception thrown in it.</summary>
internal sealed class RunScope
{
    private Exception? _lastException;

    public bool Closed { get; set; }

    public Exception? LastException
    {
        get => Volatile.Read(ref _lastException);
        set => Volatile.Write(ref _lastException, value);
    }
}
