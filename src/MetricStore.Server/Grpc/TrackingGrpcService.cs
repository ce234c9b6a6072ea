using Grpc.Core;
using MetricStore.Tracking;
using V1 = MetricStore.Protocol.V1;

namespace MetricStore.Server.Grpc;

/// <summary>
/// TrackingService over gRPC and, through JSON transcoding, over HTTP/JSON. Validation and rules
/// live in <see cref="TrackingStore"/>; errors become statuses in <see cref="ErrorInterceptor"/>.
/// </summary>
internal sealed class TrackingGrpcService(TrackingStore store) : V1.TrackingService.TrackingServiceBase
{
    private static readonly V1.LogParamsResponse s_logParamsResponse = new();
    private static readonly V1.SetTagsResponse s_setTagsResponse = new();
    private static readonly V1.DeleteTagResponse s_deleteTagResponse = new();

    public override Task<V1.Experiment> CreateExperiment(V1.CreateExperimentRequest request, ServerCallContext context) =>
        Task.FromResult(TrackingMapping.ToWire(store.CreateExperiment(request.Name, request.Description, request.Tags)));

    public override Task<V1.Experiment> GetExperiment(V1.GetExperimentRequest request, ServerCallContext context)
    {
        if ((request.ExperimentId != 0) == (request.Name.Length != 0))
        {
            Core.MetricStoreException.InvalidArgument(
                $"give exactly one of experiment_id and name (got experiment_id {request.ExperimentId} and name {Core.Validate.Quote(request.Name)})");
        }

        var experiment = request.ExperimentId != 0 ? store.GetExperiment(request.ExperimentId) : store.GetExperimentByName(request.Name);
        return Task.FromResult(TrackingMapping.ToWire(experiment));
    }

    public override Task<V1.ListExperimentsResponse> ListExperiments(V1.ListExperimentsRequest request, ServerCallContext context)
    {
        var page = store.ListExperiments(request.PageSize, request.PageToken, request.Text);
        var response = new V1.ListExperimentsResponse { NextPageToken = page.NextPageToken ?? "" };
        foreach (var e in page.Items)
        {
            response.Experiments.Add(TrackingMapping.ToWire(e));
        }

        return Task.FromResult(response);
    }

    public override Task<V1.Experiment> SetExperimentTags(V1.SetExperimentTagsRequest request, ServerCallContext context) =>
        Task.FromResult(TrackingMapping.ToWire(store.SetExperimentTags(request.ExperimentId, request.Tags)));

    public override Task<V1.Run> CreateRun(V1.CreateRunRequest request, ServerCallContext context)
    {
        var run = store.CreateRun(new NewRun
        {
            ExperimentId = request.ExperimentId,
            ExperimentName = request.ExperimentName,
            Name = request.Name,
            Params = request.Params,
            Tags = request.Tags,
            Source = TrackingMapping.FromWire(request.Source),
            ParentRunId = request.ParentRunId,
            StartTimeMs = request.StartTimeMs,
            Note = request.Note is null ? null : new Note(request.Note.Hypothesis, request.Note.Outcome),
        });
        return Task.FromResult(TrackingMapping.ToWire(run));
    }

    public override Task<V1.Run> GetRun(V1.GetRunRequest request, ServerCallContext context) =>
        Task.FromResult(TrackingMapping.ToWire(store.GetRun(request.RunId)));

    public override Task<V1.SearchRunsResponse> SearchRuns(V1.SearchRunsRequest request, ServerCallContext context)
    {
        var page = store.SearchRuns(request.Filter, request.ExperimentNames, request.OrderBy, request.PageSize, request.PageToken, request.Text);
        var response = new V1.SearchRunsResponse { NextPageToken = page.NextPageToken ?? "" };
        foreach (var r in page.Items)
        {
            response.Runs.Add(TrackingMapping.ToWire(r));
        }

        return Task.FromResult(response);
    }

    public override Task<V1.ListRunsResponse> ListRuns(V1.ListRunsRequest request, ServerCallContext context)
    {
        if ((request.ExperimentId != 0) == (request.ExperimentName.Length != 0))
        {
            Core.MetricStoreException.InvalidArgument(
                $"give exactly one of experiment_id and experiment_name (got experiment_id {request.ExperimentId} and experiment_name {Core.Validate.Quote(request.ExperimentName)})");
        }

        var experimentId = request.ExperimentId != 0 ? request.ExperimentId : store.GetExperimentByName(request.ExperimentName).Id;
        var page = store.ListRuns(experimentId, request.PageSize, request.PageToken);
        var response = new V1.ListRunsResponse { NextPageToken = page.NextPageToken ?? "" };
        foreach (var r in page.Items)
        {
            response.Runs.Add(TrackingMapping.ToWire(r));
        }

        return Task.FromResult(response);
    }

    public override Task<V1.Run> EndRun(V1.EndRunRequest request, ServerCallContext context) =>
        Task.FromResult(TrackingMapping.ToWire(store.EndRun(request.RunId, TrackingMapping.FromWire(request.Status), request.EndTimeMs)));

    public override Task<V1.LogParamsResponse> LogParams(V1.LogParamsRequest request, ServerCallContext context)
    {
        store.LogParams(request.RunId, request.Params);
        return Task.FromResult(s_logParamsResponse);
    }

    public override Task<V1.SetTagsResponse> SetTags(V1.SetTagsRequest request, ServerCallContext context)
    {
        store.SetTags(request.RunId, request.Tags);
        return Task.FromResult(s_setTagsResponse);
    }

    public override Task<V1.DeleteTagResponse> DeleteTag(V1.DeleteTagRequest request, ServerCallContext context)
    {
        store.DeleteTag(request.RunId, request.Key);
        return Task.FromResult(s_deleteTagResponse);
    }

    public override Task<V1.Note> SetNote(V1.SetNoteRequest request, ServerCallContext context)
    {
        var note = store.SetNote(
            request.RunId,
            request.HasHypothesis ? request.Hypothesis : null,
            request.HasOutcome ? request.Outcome : null);
        return Task.FromResult(TrackingMapping.ToWire(note));
    }
}
