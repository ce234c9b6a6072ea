using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using MetricStore.Client;
using MetricStore.Protocol.V1;
using MetricStore.Tests;
using MetricStore.Tracking;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Role = MetricStore.Tracking.Registry.Role;

namespace MetricStore.Server.Tests;

/// <summary>
/// The registry's rules on a real server with --auth: users with roles and tokens, a writer who
/// registers and requests, approvers who decide, readers who resolve, and the audit trail of it all.
/// </summary>
public sealed class RegistryFixture : IAsyncLifetime
{
    private readonly TempDirectory _data = new();
    private TestServer? _server;

    internal TestServer Server => _server ?? throw new InvalidOperationException("not started");

    public Dictionary<string, string> Tokens { get; } = new();

    public async Task InitializeAsync()
    {
        using (var store = TrackingStore.Open(new TrackingStoreOptions { DataDirectory = _data.Path }))
        {
            foreach (var (name, role) in new[] { ("wendy", Role.Writer), ("walt", Role.Writer), ("ann", Role.Approver), ("abe", Role.Approver), ("rita", Role.Reader), ("root", Role.Admin) })
            {
                Tokens[name] = store.AddUser(name, role).Token;
            }
        }

        _server = await TestServer.StartAsync(_data.Path, configure: o => o with { Auth = true });
    }

    public MetricStoreClient As(string user) => new(new MetricStoreClientOptions { Address = Server.Server.GrpcAddress, Token = Tokens[user], Capture = CaptureOptions.None });

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        _data.Dispose();
    }
}

public sealed class RegistryTests(RegistryFixture fixture) : IClassFixture<RegistryFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    /// <summary>A model with one version per artifact content given, all made by wendy from one run.</summary>
    private async Task<(string Model, string RunId, List<ModelVersion> Versions)> ModelAsync(params string[] contents)
    {
        using var wendy = fixture.As("wendy");
        var experiment = Unique.Name("registry");
        await wendy.CreateExperimentAsync(experiment);
        var run = await wendy.Tracking.CreateRunAsync(new CreateRunRequest { ExperimentName = experiment, Params = { ["lr"] = "0.01" } });
        await using (var logging = await wendy.AttachRunAsync(run.RunId))
        {
            logging.Log("val/auc", 1, 0.5);
            logging.Log("val/auc", 2, 0.91);
            await logging.FlushAsync();
        }

        var model = Unique.Name("model").Replace(' ', '-');
        await wendy.Registry.CreateModelAsync(new CreateModelRequest { Name = model, Description = "fraud scorer" });
        var versions = new List<ModelVersion>();
        for (var i = 0; i < contents.Length; i++)
        {
            await wendy.UploadArtifactAsync(run.RunId, $"model/v{i}.onnx", new MemoryStream(Encoding.UTF8.GetBytes(contents[i])));
            versions.Add(await wendy.Registry.CreateVersionAsync(new CreateVersionRequest { Name = model, RunId = run.RunId, ArtifactPath = $"model/v{i}.onnx", InputSchema = "{\"x\":\"float[4]\"}" }));
        }

        return (model, run.RunId, versions);
    }

    private static async Task<TransitionRequest> ToStagingAsync(MetricStoreClient client, string model, long version) =>
        await client.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = version, Stage = Stage.Staging });

    [Fact]
    public async Task From_a_run_to_production_through_request_and_approval_then_resolve_and_pull()
    {
        var (model, runId, versions) = await ModelAsync("weights-v1");
        var v1 = versions[0];
        Assert.Equal(1, v1.Version);
        Assert.Equal(runId, v1.SourceRunId);
        Assert.Equal("0.01", v1.Params["lr"]);
        Assert.Equal(0.91, v1.Metrics["val/auc"]); // the last value, snapshotted with the version
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("weights-v1"))), v1.ArtifactSha256);
        Assert.Equal("wendy", v1.CreatedBy);

        using var wendy = fixture.As("wendy");
        using var ann = fixture.As("ann");
        using var rita = fixture.As("rita");
        Assert.Equal(v1.Metrics, (await ann.Registry.GetVersionAsync(new GetVersionRequest { Name = model, Version = 1 })).Metrics);
        var staged = await ToStagingAsync(wendy, model, 1);
        Assert.Equal(RequestState.Approved, staged.State); // only Production needs an approval

        var request = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production, Comment = "beats v0 by 2 points" });
        Assert.Equal(RequestState.Pending, request.State);
        var notYet = await Assert.ThrowsAsync<RpcException>(async () => await rita.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@Production" }));
        Assert.Equal(StatusCode.NotFound, notYet.StatusCode);

        // What an approver sees waiting for a decision.
        var pending = await ann.Registry.ListRequestsAsync(new ListRequestsRequest { Name = model, State = RequestState.Pending });
        Assert.Equal([request.RequestId], pending.Requests.Select(r => r.RequestId));
        Assert.Equal(2, (await ann.Registry.ListRequestsAsync(new ListRequestsRequest { Name = model })).Requests.Count);

        var approved = await ann.Registry.ApproveRequestAsync(new DecideRequest { RequestId = request.RequestId, Comment = "ok" });
        Assert.Equal((RequestState.Approved, "ann"), (approved.State, approved.DecidedBy));

        var resolved = await rita.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@Production" });
        Assert.Equal(1, resolved.Version.Version);
        var listed = await rita.Registry.ListVersionsAsync(new ListVersionsRequest { Name = model });
        Assert.Equal([(1L, Stage.Production)], listed.Versions.Select(v => (v.Version, v.Stage)));
        Assert.Equal(v1.ArtifactSha256, resolved.ArtifactSha256);
        Assert.Equal($"metricstore://runs/{runId}/artifacts/model/v0.onnx", resolved.ArtifactUri);

        using var target = new TempDirectory();
        var (_, file) = await rita.PullModelAsync($"{model}@production", target.Path);
        Assert.Equal("weights-v1", await File.ReadAllTextAsync(file));

        var audit = (await rita.Registry.ListAuditAsync(new ListAuditRequest { Name = model })).Records;
        Assert.Equal(
            ["create_model/wendy", "create_version/wendy", "request/wendy", "transition/wendy", "request/wendy", "approve/ann", "transition/ann"],
            audit.Select(a => $"{a.Action}/{a.Actor}"));
        Assert.All(audit, a => Assert.True(a.Allowed));
        Assert.Equal(("Staging", "Production"), (audit[^1].From, audit[^1].To));
    }

    [Fact]
    public async Task Self_approval_and_wrong_roles_are_refused_and_audited()
    {
        var (model, _, _) = await ModelAsync("w");
        using var wendy = fixture.As("wendy");
        using var ann = fixture.As("ann");
        using var rita = fixture.As("rita");
        using var walt = fixture.As("walt");
        await ToStagingAsync(ann, model, 1); // approvers may request too
        var request = await ann.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production });

        var self = await Assert.ThrowsAsync<RpcException>(async () => await ann.Registry.ApproveRequestAsync(new DecideRequest { RequestId = request.RequestId }));
        Assert.Equal(StatusCode.PermissionDenied, self.StatusCode);
        Assert.Contains("other than the requester", self.Status.Detail, StringComparison.Ordinal);

        var writer = await Assert.ThrowsAsync<RpcException>(async () => await walt.Registry.ApproveRequestAsync(new DecideRequest { RequestId = request.RequestId }));
        Assert.Equal(StatusCode.PermissionDenied, writer.StatusCode);
        var reader = await Assert.ThrowsAsync<RpcException>(async () => await rita.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Archived }));
        Assert.Equal(StatusCode.PermissionDenied, reader.StatusCode);
        var readerCreates = await Assert.ThrowsAsync<RpcException>(async () => await rita.Registry.CreateModelAsync(new CreateModelRequest { Name = model + "-x" }));
        Assert.Equal(StatusCode.PermissionDenied, readerCreates.StatusCode);

        var stillStaging = await Assert.ThrowsAsync<RpcException>(async () => await rita.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@Production" }));
        Assert.Equal(StatusCode.NotFound, stillStaging.StatusCode); // nothing was approved
        var refused = (await rita.Registry.ListAuditAsync(new ListAuditRequest { Name = model })).Records.Where(a => !a.Allowed).ToList();
        Assert.Equal(["approve/ann", "approve/walt", "request/rita"], refused.Select(a => $"{a.Action}/{a.Actor}"));
        Assert.Contains("other than the requester", refused[0].Comment, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_archived_version_needs_a_new_request_and_invalid_moves_say_why()
    {
        var (model, _, _) = await ModelAsync("w");
        using var wendy = fixture.As("wendy");
        using var abe = fixture.As("abe");
        var skip = await Assert.ThrowsAsync<RpcException>(async () => await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production }));
        Assert.Equal(StatusCode.FailedPrecondition, skip.StatusCode);
        Assert.Contains("request Staging first", skip.Status.Detail, StringComparison.Ordinal);

        await ToStagingAsync(wendy, model, 1);
        var stale = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production });
        await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Archived });

        var error = await Assert.ThrowsAsync<RpcException>(async () => await abe.Registry.ApproveRequestAsync(new DecideRequest { RequestId = stale.RequestId }));
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("make a new request", error.Status.Detail, StringComparison.Ordinal);

        var again = await Assert.ThrowsAsync<RpcException>(async () => await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production }));
        Assert.Contains("archived version can only go back to Staging", again.Status.Detail, StringComparison.Ordinal);

        // Back through Staging with a new request, approved: it is in Production.
        await ToStagingAsync(wendy, model, 1);
        var fresh = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production });
        await abe.Registry.ApproveRequestAsync(new DecideRequest { RequestId = fresh.RequestId });
        Assert.Equal(Stage.Production, (await wendy.Registry.GetVersionAsync(new GetVersionRequest { Name = model, Version = 1 })).Stage);
    }

    [Fact]
    public async Task Two_concurrent_approvals_of_competing_versions_leave_exactly_one_in_production()
    {
        var (model, _, _) = await ModelAsync("a", "b");
        using var wendy = fixture.As("wendy");
        using var ann = fixture.As("ann");
        using var abe = fixture.As("abe");
        await ToStagingAsync(wendy, model, 1);
        await ToStagingAsync(wendy, model, 2);
        var r1 = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 1, Stage = Stage.Production });
        var r2 = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = 2, Stage = Stage.Production });

        var results = await Task.WhenAll(
            Outcome(() => ann.Registry.ApproveRequestAsync(new DecideRequest { RequestId = r1.RequestId }).ResponseAsync),
            Outcome(() => abe.Registry.ApproveRequestAsync(new DecideRequest { RequestId = r2.RequestId }).ResponseAsync));
        Assert.Equal(1, results.Count(r => r is null));
        Assert.Single(results, r => r is { StatusCode: StatusCode.FailedPrecondition });

        var stages = new[] { 1L, 2L }.Select(v => wendy.Registry.GetVersion(new GetVersionRequest { Name = model, Version = v }).Stage).ToList();
        Assert.Equal(1, stages.Count(s => s == Stage.Production));
        var approvals = (await wendy.Registry.ListAuditAsync(new ListAuditRequest { Name = model })).Records.Where(a => a.Action == "approve").ToList();
        Assert.Equal(2, approvals.Count);
        Assert.Equal(1, approvals.Count(a => a.Allowed));

        static async Task<RpcException?> Outcome(Func<Task> call)
        {
            try
            {
                await call();
                return null;
            }
            catch (RpcException e)
            {
                return e;
            }
        }
    }

    [Fact]
    public async Task Approving_production_archives_the_previous_version_and_aliases_resolve()
    {
        var (model, _, _) = await ModelAsync("a", "b");
        using var wendy = fixture.As("wendy");
        using var ann = fixture.As("ann");
        foreach (var v in new[] { 1L, 2L })
        {
            await ToStagingAsync(wendy, model, v);
            var request = await wendy.Registry.RequestTransitionAsync(new RequestTransitionRequest { Name = model, Version = v, Stage = Stage.Production });
            await ann.Registry.ApproveRequestAsync(new DecideRequest { RequestId = request.RequestId });
        }

        Assert.Equal(Stage.Archived, (await wendy.Registry.GetVersionAsync(new GetVersionRequest { Name = model, Version = 1 })).Stage);
        Assert.Equal(2, (await wendy.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@Production" })).Version.Version);

        // 'champion' is protected: a writer cannot move it, an approver can; 'candidate' is not.
        var denied = await Assert.ThrowsAsync<RpcException>(async () => await wendy.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = "champion" }));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        await ann.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 2, Alias = "champion" });
        await wendy.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = "candidate" });
        Assert.Equal(2, (await wendy.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@champion" })).Version.Version);
        Assert.Equal(1, (await wendy.Registry.ResolveAsync(new ResolveRequest { Reference = $"{model}@candidate" })).Version.Version);

        // Nothing else resolves.
        foreach (var (reference, code) in new[] { ($"{model}@Archived", StatusCode.InvalidArgument), ($"{model}@None", StatusCode.InvalidArgument), ($"{model}@2", StatusCode.NotFound), ($"{model}@nope", StatusCode.NotFound), (model, StatusCode.InvalidArgument) })
        {
            var error = await Assert.ThrowsAsync<RpcException>(async () => await wendy.Registry.ResolveAsync(new ResolveRequest { Reference = reference }));
            Assert.True(code == error.StatusCode, $"{reference}: {error.Status}");
        }

        var stage = await Assert.ThrowsAsync<RpcException>(async () => await ann.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = "production" }));
        Assert.Equal(StatusCode.InvalidArgument, stage.StatusCode);
    }

    [Fact]
    public async Task Missing_or_bad_tokens_are_unauthenticated_on_every_service_and_roles_apply_to_ingest()
    {
        var server = fixture.Server;
        using var anonymous = new MetricStoreClient(new MetricStoreClientOptions { Address = server.Server.GrpcAddress, Capture = CaptureOptions.None });
        using var forged = new MetricStoreClient(new MetricStoreClientOptions { Address = server.Server.GrpcAddress, Token = "mst_forged", Capture = CaptureOptions.None });
        foreach (var client in new[] { anonymous, forged })
        {
            var calls = new Func<Task>[]
            {
                () => client.Tracking.ListExperimentsAsync(new ListExperimentsRequest()).ResponseAsync,
                () => client.Registry.ResolveAsync(new ResolveRequest { Reference = "a@Production" }).ResponseAsync,
                () => client.Query.ListMetricsAsync(new ListMetricsRequest { RunId = new string('0', 32) }).ResponseAsync,
                () => client.ListArtifactsAsync(new string('0', 32)),
                async () =>
                {
                    using var call = client.Ingest.Write();
                    await call.ResponseStream.MoveNext(CancellationToken.None);
                },
            };
            foreach (var call in calls)
            {
                var error = await Assert.ThrowsAsync<RpcException>(call);
                Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            }
        }

        // A reader may read but not write, ingest included.
        using var rita = fixture.As("rita");
        await rita.Tracking.ListExperimentsAsync(new ListExperimentsRequest());
        var create = await Assert.ThrowsAsync<RpcException>(async () => await rita.Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = Unique.Name("x") }));
        Assert.Equal(StatusCode.PermissionDenied, create.StatusCode);
        using var ingest = rita.Ingest.Write();
        var write = await Assert.ThrowsAsync<RpcException>(async () => await ingest.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.PermissionDenied, write.StatusCode);

        // HTTP: 401 without a token, 403 with a reader's on a write, health open to all.
        var http = server.Http;
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        var unauthenticated = await http.GetAsync("/v1/experiments");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        Assert.Contains("Bearer", unauthenticated.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        using var put = new HttpRequestMessage(HttpMethod.Put, $"/v1/runs/{new string('0', 32)}/artifacts/x.bin") { Content = new ByteArrayContent([1]) };
        put.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fixture.Tokens["rita"]);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.SendAsync(put)).StatusCode);
        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/experiments");
        get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fixture.Tokens["rita"]);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(get)).StatusCode);
    }

    [Fact]
    public async Task Webhooks_are_signed_retried_after_a_500_and_their_history_is_kept()
    {
        // A real receiver on loopback: answers 500 to the first delivery, 200 afterwards.
        var received = new ConcurrentQueue<(string Event, string Body, string Signature)>();
        var calls = 0;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var receiver = builder.Build();
        receiver.MapPost("/hook", async (HttpContext http) =>
        {
            var body = await new StreamReader(http.Request.Body).ReadToEndAsync();
            received.Enqueue((http.Request.Headers["X-MetricStore-Event"].ToString(), body, http.Request.Headers["X-MetricStore-Signature"].ToString()));
            return Interlocked.Increment(ref calls) == 1 ? Results.StatusCode(500) : Results.Ok();
        });
        await receiver.StartAsync();
        var url = receiver.Urls.First() + "/hook";

        var (model, runId, _) = await ModelAsync("a");
        using var wendy = fixture.As("wendy");
        const string Secret = "0123456789abcdef-secret";
        var hook = await wendy.Registry.AddWebhookAsync(new AddWebhookRequest { ModelName = model, Url = url, Secret = Secret, Events = { "version.created" } });
        await wendy.UploadArtifactAsync(runId, "model/next.onnx", new MemoryStream([7]));
        await wendy.Registry.CreateVersionAsync(new CreateVersionRequest { Name = model, RunId = runId, ArtifactPath = "model/next.onnx" });
        await ToStagingAsync(wendy, model, 2); // stage.changed: not subscribed

        var deadline = DateTime.UtcNow.AddSeconds(20);
        Delivery? delivery = null;
        while (DateTime.UtcNow < deadline)
        {
            delivery = (await wendy.Registry.ListDeliveriesAsync(new ListDeliveriesRequest { WebhookId = hook.WebhookId })).Deliveries.SingleOrDefault();
            if (delivery is { Delivered: true })
            {
                break;
            }

            await Task.Delay(100);
        }

        Assert.NotNull(delivery);
        Assert.True(delivery.Delivered, delivery.ToString());
        Assert.Equal(2, delivery.Attempts);
        Assert.Equal(200, delivery.LastStatusCode);
        Assert.Equal("version.created", delivery.Event);
        Assert.Equal(2, received.Count); // the 500, then the retry
        foreach (var (@event, body, signature) in received)
        {
            Assert.Equal("version.created", @event);
            var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), Encoding.UTF8.GetBytes(body)));
            Assert.Equal(expected, signature);
            var json = JsonDocument.Parse(body).RootElement;
            Assert.Equal(model, json.GetProperty("model").GetString());
            Assert.Equal(2, json.GetProperty("version").GetInt64());
        }
    }

    [Fact]
    public async Task A_slow_webhook_never_delays_the_registry_and_lineage_reaches_the_run()
    {
        // An endpoint that holds every delivery until the test lets go.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var slow = builder.Build();
        slow.MapPost("/hook", async () =>
        {
            held.TrySetResult();
            await release.Task;
            return Results.Ok();
        });
        await slow.StartAsync();

        var (model, runId, _) = await ModelAsync("a");
        using var wendy = fixture.As("wendy");
        await wendy.Registry.AddWebhookAsync(new AddWebhookRequest { ModelName = model, Url = slow.Urls.First() + "/hook", Secret = new string('s', 16) });
        await wendy.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = "a0" });
        await held.Task.WaitAsync(TimeSpan.FromSeconds(20)); // the dispatcher is now stuck in a delivery

        // Changes go on while it is stuck: none of them waits for the endpoint.
        for (var i = 1; i < 3; i++)
        {
            await wendy.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = $"a{i}" }).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(20));
        }

        Assert.False(release.Task.IsCompleted);
        Assert.Equal(["a0", "a1", "a2"], (await wendy.Registry.GetVersionAsync(new GetVersionRequest { Name = model, Version = 1 })).Aliases);
        release.SetResult();

        var lineage = await wendy.Registry.GetLineageAsync(new GetVersionRequest { Name = model, Version = 1 });
        Assert.Equal(runId, lineage.Run.RunId);
        Assert.Equal("0.01", lineage.Run.Params["lr"]);
        Assert.Equal(["model/v0.onnx"], lineage.ArtifactPaths);
        Assert.Equal("0.01", lineage.Version.Params["lr"]);
    }

    [Fact]
    public async Task The_registry_answers_over_http_json_with_a_bearer_token()
    {
        var (model, _, _) = await ModelAsync("a");
        var http = fixture.Server.Http;
        async Task<HttpResponseMessage> Send(HttpMethod method, string path, string user, object? body = null)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", fixture.Tokens[user]);
            if (body is not null)
            {
                request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
            }

            return await http.SendAsync(request);
        }

        var staged = await Send(HttpMethod.Post, $"/v1/models/{model}/versions/1/requests", "wendy", new { stage = "STAGE_STAGING" });
        Assert.Equal(HttpStatusCode.OK, staged.StatusCode);
        var resolved = await Send(HttpMethod.Get, $"/v1/resolve/{model}@Staging", "rita");
        var text = await resolved.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, resolved.StatusCode);
        Assert.Equal(1, JsonDocument.Parse(text).RootElement.GetProperty("version").GetProperty("version").GetInt64());
        var missing = await Send(HttpMethod.Get, $"/v1/resolve/{model}@Production", "rita");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        // Request, approve, resolve and fetch the verified bytes, all over HTTP/JSON.
        var requested = await Send(HttpMethod.Post, $"/v1/models/{model}/versions/1/requests", "wendy", new { stage = "STAGE_PRODUCTION", comment = "ship" });
        var requestId = JsonDocument.Parse(await requested.Content.ReadAsStringAsync()).RootElement.GetProperty("requestId").GetInt64();
        Assert.Equal(HttpStatusCode.Forbidden, (await Send(HttpMethod.Post, $"/v1/requests/{requestId}/approve", "wendy", new { })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await Send(HttpMethod.Post, $"/v1/requests/{requestId}/approve", "ann", new { comment = "ok" })).StatusCode);
        var production = JsonDocument.Parse(await (await Send(HttpMethod.Get, $"/v1/resolve/{model}@Production", "rita")).Content.ReadAsStringAsync()).RootElement;
        var version = production.GetProperty("version");
        var bytes = await Send(HttpMethod.Get, $"/v1/runs/{version.GetProperty("sourceRunId").GetString()}/artifacts/{version.GetProperty("artifactPath").GetString()}", "rita");
        Assert.Equal(HttpStatusCode.OK, bytes.StatusCode);
        Assert.Equal(production.GetProperty("artifactSha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(await bytes.Content.ReadAsByteArrayAsync())));
        var denied = await Send(HttpMethod.Post, "/v1/models", "rita", new { name = model + "-x" });
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        // Rita's refused attempt is in the audit of the name she tried (proto3 JSON leaves out allowed = false).
        var audit = await Send(HttpMethod.Get, $"/v1/models/{model}-x/audit", "rita");
        var record = JsonDocument.Parse(await audit.Content.ReadAsStringAsync()).RootElement.GetProperty("records").EnumerateArray().Single();
        Assert.Equal(("rita", "create_model"), (record.GetProperty("actor").GetString(), record.GetProperty("action").GetString()));
        Assert.False(record.TryGetProperty("allowed", out var allowed) && allowed.GetBoolean());
    }

    [Fact]
    public async Task Pull_refuses_a_tampered_artifact_and_leaves_nothing()
    {
        var (model, _, versions) = await ModelAsync("the real weights");
        using var wendy = fixture.As("wendy");
        await wendy.Registry.SetAliasAsync(new SetAliasRequest { Name = model, Version = 1, Alias = "candidate" });
        var blob = Path.Combine(fixture.Server.DataDirectory, "artifacts", "blobs", versions[0].ArtifactSha256[..2], versions[0].ArtifactSha256);
        await File.WriteAllTextAsync(blob, "the fake weights");
        using var target = new TempDirectory();
        await Assert.ThrowsAsync<InvalidDataException>(() => wendy.PullModelAsync($"{model}@candidate", target.Path));
        Assert.Empty(Directory.GetFileSystemEntries(target.Path));
    }
}
