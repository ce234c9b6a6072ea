using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>The tracking service through the generated gRPC client on a real server.</summary>
public sealed class GrpcTrackingTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    /// <summary>Each test fails if the shared server logged an error during it (xUnit does not fail a test for fixture cleanup).</summary>
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private TrackingService.TrackingServiceClient Tracking => fixture.Server.Client.Tracking;

    private async Task<(Experiment Experiment, Run Run)> NewRunAsync()
    {
        var experiment = await Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = Unique.Name("grpc") });
        var request = new CreateRunRequest { ExperimentId = experiment.ExperimentId, Name = "r" };
        request.Params["lr"] = "0.01";
        return (experiment, await Tracking.CreateRunAsync(request));
    }

    [Fact]
    public async Task Experiments_are_created_fetched_by_id_and_name_and_listed()
    {
        var name = Unique.Name("exp");
        var request = new CreateExperimentRequest { Name = name, Description = "d" };
        request.Tags["team"] = "vision";
        var created = await Tracking.CreateExperimentAsync(request);

        Assert.Equal(created, await Tracking.GetExperimentAsync(new GetExperimentRequest { ExperimentId = created.ExperimentId }));
        Assert.Equal(created, await Tracking.GetExperimentAsync(new GetExperimentRequest { Name = name }));
        var listed = new List<Experiment>();
        var token = "";
        do
        {
            var page = await Tracking.ListExperimentsAsync(new ListExperimentsRequest { PageSize = 2, PageToken = token });
            listed.AddRange(page.Experiments);
            token = page.NextPageToken;
        }
        while (token.Length > 0);
        Assert.Contains(created, listed);
    }

    [Fact]
    public async Task Duplicate_experiment_is_already_exists_and_names_the_experiment()
    {
        var name = Unique.Name("dup");
        await Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = name, Description = "first" });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = name, Description = "second" }));
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains($"'{name}' already exists", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal("first", (await Tracking.GetExperimentAsync(new GetExperimentRequest { Name = name })).Description);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public async Task Empty_experiment_name_is_invalid_argument(string name)
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = name }));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("name", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Over_long_experiment_name_is_invalid_argument_and_not_stored()
    {
        var name = new string('x', 257);
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.CreateExperimentAsync(new CreateExperimentRequest { Name = name }));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("257 characters", e.Status.Detail, StringComparison.Ordinal);
        var all = await fixture.Server.Client.ListExperimentsAsync();
        Assert.DoesNotContain(all, x => x.Name.StartsWith("xxxx", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Get_experiment_needs_exactly_one_of_id_and_name()
    {
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.GetExperimentAsync(new GetExperimentRequest()));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
    }

    [Fact]
    public async Task Run_lifecycle_create_show_end_over_grpc()
    {
        var (experiment, run) = await NewRunAsync();
        Assert.Equal(RunStatus.Running, run.Status);
        Assert.Equal(experiment.Name, run.ExperimentName);

        var ended = await Tracking.EndRunAsync(new EndRunRequest { RunId = run.RunId, Status = RunStatus.Finished });
        Assert.Equal(RunStatus.Finished, ended.Status);
        Assert.True(ended.EndTimeMs >= ended.StartTimeMs);

        var runs = await Tracking.ListRunsAsync(new ListRunsRequest { ExperimentName = experiment.Name });
        Assert.Equal(run.RunId, Assert.Single(runs.Runs).RunId);
    }

    [Fact]
    public async Task Invalid_status_transition_is_failed_precondition_and_keeps_the_status()
    {
        var (_, run) = await NewRunAsync();
        await Tracking.EndRunAsync(new EndRunRequest { RunId = run.RunId, Status = RunStatus.Failed });
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.EndRunAsync(new EndRunRequest { RunId = run.RunId, Status = RunStatus.Finished }));
        Assert.Equal(StatusCode.FailedPrecondition, e.StatusCode);
        Assert.Contains("FAILED", e.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(RunStatus.Failed, (await Tracking.GetRunAsync(new GetRunRequest { RunId = run.RunId })).Status);

        var unspecified = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.EndRunAsync(new EndRunRequest { RunId = run.RunId }));
        Assert.Equal(StatusCode.InvalidArgument, unspecified.StatusCode);
    }

    [Fact]
    public async Task Param_conflict_is_already_exists_naming_key_and_both_values()
    {
        var (_, run) = await NewRunAsync();
        var request = new LogParamsRequest { RunId = run.RunId };
        request.Params["lr"] = "0.02";
        request.Params["extra"] = "x";
        var e = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.LogParamsAsync(request));
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains("'lr'", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("'0.01'", e.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("'0.02'", e.Status.Detail, StringComparison.Ordinal);
        var stored = await Tracking.GetRunAsync(new GetRunRequest { RunId = run.RunId });
        Assert.Equal(new Dictionary<string, string> { ["lr"] = "0.01" }, stored.Params);
    }

    [Fact]
    public async Task Tags_and_note_round_trip()
    {
        var (_, run) = await NewRunAsync();
        var tags = new SetTagsRequest { RunId = run.RunId };
        tags.Tags["a"] = "1";
        tags.Tags["b"] = "2";
        await Tracking.SetTagsAsync(tags);
        await Tracking.DeleteTagAsync(new DeleteTagRequest { RunId = run.RunId, Key = "a" });
        await Tracking.SetNoteAsync(new SetNoteRequest { RunId = run.RunId, Hypothesis = "h" });
        var note = await Tracking.SetNoteAsync(new SetNoteRequest { RunId = run.RunId, Outcome = "o" });
        Assert.Equal(("h", "o"), (note.Hypothesis, note.Outcome));

        var stored = await Tracking.GetRunAsync(new GetRunRequest { RunId = run.RunId });
        Assert.Equal(new Dictionary<string, string> { ["b"] = "2" }, stored.Tags);
        Assert.Equal("h", stored.Note.Hypothesis);
    }

    [Fact]
    public async Task Unknown_run_is_not_found_and_malformed_id_is_invalid_argument()
    {
        var unknown = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.GetRunAsync(new GetRunRequest { RunId = Core.RunId.New() }));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        var malformed = await Assert.ThrowsAsync<RpcException>(async () => await Tracking.GetRunAsync(new GetRunRequest { RunId = "nope" }));
        Assert.Equal(StatusCode.InvalidArgument, malformed.StatusCode);
        Assert.Contains("'nope'", malformed.Status.Detail, StringComparison.Ordinal);
    }
}
