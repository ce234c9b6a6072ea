using Grpc.Core;
using MetricStore.Server.Auth;
using MetricStore.Tracking;
using MetricStore.Tracking.Registry;
using V1 = MetricStore.Protocol.V1;
using VersionInfo = MetricStore.Tracking.Registry.VersionInfo;

namespace MetricStore.Server.Grpc;

/// <summary>RegistryService over gRPC and HTTP/JSON. Rules, roles and the audit trail live in <see cref="TrackingStore"/>.</summary>
internal sealed class RegistryGrpcService(TrackingStore store, MetricSummarySync summaries) : V1.RegistryService.RegistryServiceBase
{
    private static Actor Caller(ServerCallContext context) => Authentication.ActorOf(context.GetHttpContext());

    public override Task<V1.RegisteredModel> CreateModel(V1.CreateModelRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.CreateModel(Caller(context), request.Name, request.Description, request.Tags)));

    public override Task<V1.RegisteredModel> GetModel(V1.GetModelRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.GetModel(request.Name)));

    public override async Task<V1.ModelVersion> CreateVersion(V1.CreateVersionRequest request, ServerCallContext context)
    {
        // The snapshot takes the run's metric summaries as they are now, not as of the last periodic copy.
        await summaries.SyncOnceAsync();
        return ToWire(store.CreateVersion(
            Caller(context),
            new NewVersion(request.Name, request.RunId, request.ArtifactPath, request.InputSchema, request.OutputSchema, request.Description)));
    }

    public override Task<V1.ModelVersion> GetVersion(V1.GetVersionRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.GetVersion(request.Name, request.Version)));

    public override Task<V1.ListVersionsResponse> ListVersions(V1.ListVersionsRequest request, ServerCallContext context)
    {
        var response = new V1.ListVersionsResponse();
        response.Versions.AddRange(store.ListVersions(request.Name).Select(ToWire));
        return Task.FromResult(response);
    }

    public override Task<V1.ListRequestsResponse> ListRequests(V1.ListRequestsRequest request, ServerCallContext context)
    {
        if (request.State != V1.RequestState.Unspecified && !Enum.IsDefined((RequestState)(int)request.State))
        {
            Core.MetricStoreException.InvalidArgument($"state {(int)request.State} is not a request state");
        }

        var response = new V1.ListRequestsResponse();
        response.Requests.AddRange(store.ListRequests(request.Name, request.State == V1.RequestState.Unspecified ? null : (RequestState)(int)request.State).Select(ToWire));
        return Task.FromResult(response);
    }

    public override Task<V1.TransitionRequest> RequestTransition(V1.RequestTransitionRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.RequestTransition(
            Caller(context), request.Name, request.Version, (Stage)(int)request.Stage, request.Comment, !request.HasArchiveExisting || request.ArchiveExisting)));

    public override Task<V1.TransitionRequest> ApproveRequest(V1.DecideRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.DecideRequest(Caller(context), request.RequestId, approve: true, request.Comment)));

    public override Task<V1.TransitionRequest> RejectRequest(V1.DecideRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.DecideRequest(Caller(context), request.RequestId, approve: false, request.Comment)));

    public override Task<V1.ModelVersion> SetAlias(V1.SetAliasRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.SetAlias(Caller(context), request.Name, request.Alias, request.Version, request.Comment)));

    public override Task<V1.ResolvedModel> Resolve(V1.ResolveRequest request, ServerCallContext context)
    {
        var version = store.Resolve(request.Reference);
        return Task.FromResult(new V1.ResolvedModel
        {
            Version = ToWire(version),
            ArtifactUri = ArtifactUri(version),
            ArtifactSha256 = version.ArtifactSha256,
        });
    }

    public override Task<V1.Lineage> GetLineage(V1.GetVersionRequest request, ServerCallContext context)
    {
        var version = store.GetVersion(request.Name, request.Version);
        var lineage = new V1.Lineage { Version = ToWire(version) };

        // The run as it is now; the version's own snapshot (params, metrics, artifact hash) stands even if the run's other data is gone.
        if (store.RunExists(version.RunId))
        {
            lineage.Run = TrackingMapping.ToWire(store.GetRun(version.RunId));
            string? token = null;
            do
            {
                var page = store.ListArtifacts(version.RunId, null, TrackingStore.MaxArtifactPageSize, token);
                lineage.ArtifactPaths.AddRange(page.Items.Select(a => a.Path));
                token = page.NextPageToken;
            }
            while (token is not null);
        }

        return Task.FromResult(lineage);
    }

    public override Task<V1.ListAuditResponse> ListAudit(V1.ListAuditRequest request, ServerCallContext context)
    {
        var response = new V1.ListAuditResponse();
        response.Records.AddRange(store.ListAudit(request.Name, request.Version).Select(a => new V1.AuditRecord
        {
            Id = a.Id,
            TimeMs = a.TimeMs,
            Actor = a.Actor,
            Action = a.Action,
            Model = a.Model,
            Version = a.Version,
            From = a.From,
            To = a.To,
            Comment = a.Comment,
            Allowed = a.Allowed,
        }));
        return Task.FromResult(response);
    }

    public override Task<V1.Webhook> AddWebhook(V1.AddWebhookRequest request, ServerCallContext context) =>
        Task.FromResult(ToWire(store.AddWebhook(Caller(context), request.ModelName, request.Url, request.Events, request.Secret)));

    public override Task<V1.ListWebhooksResponse> ListWebhooks(V1.ListWebhooksRequest request, ServerCallContext context)
    {
        var response = new V1.ListWebhooksResponse();
        response.Webhooks.AddRange(store.ListWebhooks(request.ModelName).Select(ToWire));
        return Task.FromResult(response);
    }

    public override Task<V1.ListDeliveriesResponse> ListDeliveries(V1.ListDeliveriesRequest request, ServerCallContext context)
    {
        var response = new V1.ListDeliveriesResponse();
        response.Deliveries.AddRange(store.ListDeliveries(request.WebhookId).Select(d => new V1.Delivery
        {
            DeliveryId = d.Id,
            WebhookId = d.WebhookId,
            Event = d.Event,
            Attempts = d.Attempts,
            LastStatusCode = d.LastStatusCode,
            LastError = d.LastError,
            Delivered = d.Delivered,
            CreatedTimeMs = d.CreatedTimeMs,
        }));
        return Task.FromResult(response);
    }

    /// <summary>Where the bytes are: an artifact of the source run, downloadable with ArtifactService.Download.</summary>
    public static string ArtifactUri(VersionInfo version) => $"metricstore://runs/{version.RunId}/artifacts/{version.ArtifactPath}";

    private static V1.RegisteredModel ToWire(ModelInfo m)
    {
        var wire = new V1.RegisteredModel { Name = m.Name, Description = m.Description, CreatedTimeMs = m.CreatedTimeMs, CreatedBy = m.CreatedBy, LatestVersion = m.LatestVersion };
        wire.Tags.Add(m.Tags.ToDictionary());
        wire.Aliases.Add(m.Aliases.ToDictionary());
        return wire;
    }

    private static V1.ModelVersion ToWire(VersionInfo v)
    {
        var wire = new V1.ModelVersion
        {
            Name = v.Model,
            Version = v.Version,
            SourceRunId = v.RunId,
            ArtifactPath = v.ArtifactPath,
            ArtifactSha256 = v.ArtifactSha256,
            ArtifactSize = v.ArtifactSize,
            InputSchema = v.InputSchema,
            OutputSchema = v.OutputSchema,
            Description = v.Description,
            CreatedBy = v.CreatedBy,
            CreatedTimeMs = v.CreatedTimeMs,
            Stage = (V1.Stage)(int)v.Stage,
        };
        wire.Params.Add(v.Params.ToDictionary());
        wire.Metrics.Add(v.Metrics.ToDictionary());
        wire.Aliases.AddRange(v.Aliases);
        return wire;
    }

    private static V1.TransitionRequest ToWire(TransitionInfo t) => new()
    {
        RequestId = t.Id,
        Name = t.Model,
        Version = t.Version,
        FromStage = (V1.Stage)(int)t.From,
        ToStage = (V1.Stage)(int)t.To,
        State = (V1.RequestState)(int)t.State,
        RequestedBy = t.RequestedBy,
        DecidedBy = t.DecidedBy,
        RequestComment = t.RequestComment,
        DecisionComment = t.DecisionComment,
        CreatedTimeMs = t.CreatedTimeMs,
        DecidedTimeMs = t.DecidedTimeMs,
        ArchiveExisting = t.ArchiveExisting,
    };

    private static V1.Webhook ToWire(WebhookInfo w)
    {
        var wire = new V1.Webhook { WebhookId = w.Id, ModelName = w.Model, Url = w.Url, CreatedTimeMs = w.CreatedTimeMs };
        wire.Events.AddRange(w.Events);
        return wire;
    }
}
