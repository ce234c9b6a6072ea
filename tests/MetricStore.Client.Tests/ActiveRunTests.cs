using Grpc.Core;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Client.Tests;

/// <summary>The client's run API against a real server.</summary>
public sealed class ActiveRunTests(ClientFixture fixture) : IClassFixture<ClientFixture>, IDisposable
{
    /// <summary>Each test fails if the shared server logged an error during it (xUnit does not fail a test for fixture cleanup).</summary>
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private MetricStoreClient Client => fixture.Client;

    [Fact]
    public async Task Start_run_creates_the_experiment_when_missing_and_logs_everything()
    {
        var experiment = Unique.Name("client");
        string id;
        await using (var run = await Client.StartRunAsync(experiment, "first", new Dictionary<string, string> { ["lr"] = "3e-4" }))
        {
            id = run.Id;
            await run.LogParamAsync("batch", "64");
            await run.LogParamsAsync(new Dictionary<string, string> { ["optimizer"] = "adamw", ["lr"] = "3e-4" });
            await run.SetTagAsync("team", "nlp");
            await run.SetTagAsync("tmp", "x");
            await run.DeleteTagAsync("tmp");
            await run.SetNoteAsync(hypothesis: "adamw beats sgd");
            await run.SetNoteAsync(outcome: "it does, by 2 points");
            var ended = await run.EndAsync(RunStatus.Finished);
            Assert.Equal(RunStatus.Finished, ended.Status);
        }

        var stored = await Client.GetRunAsync(id);
        Assert.Equal(experiment, stored.ExperimentName);
        Assert.Equal("first", stored.Name);
        Assert.Equal(RunStatus.Finished, stored.Status);
        Assert.Equal(new Dictionary<string, string> { ["lr"] = "3e-4", ["batch"] = "64", ["optimizer"] = "adamw" }, stored.Params);
        Assert.Equal(new Dictionary<string, string> { ["team"] = "nlp" }, stored.Tags);
        Assert.Equal(("adamw beats sgd", "it does, by 2 points"), (stored.Note.Hypothesis, stored.Note.Outcome));
        Assert.NotEmpty(stored.Source.Host);
        Assert.NotEmpty(stored.Source.Runtime);
        Assert.Contains(await Client.ListRunsAsync(experiment), r => r.RunId == id);
    }

    [Fact]
    public async Task Two_jobs_starting_in_a_new_experiment_at_once_share_it()
    {
        var experiment = Unique.Name("race");
        var runs = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Client.StartRunAsync(experiment)));
        foreach (var run in runs)
        {
            await run.EndAsync();
        }

        Assert.Single(runs.Select(r => r.Info.ExperimentId).Distinct());
        Assert.Equal(6, (await Client.ListRunsAsync(experiment)).Count);
    }

    [Fact]
    public async Task A_run_disposed_without_end_finishes()
    {
        string id;
        await using (var run = await Client.StartRunAsync(Unique.Name("dispose")))
        {
            id = run.Id;
            await run.SetTagAsync("k", "v");
        }

        var stored = await Client.GetRunAsync(id);
        Assert.Equal(RunStatus.Finished, stored.Status);
        Assert.False(stored.Tags.ContainsKey(ActiveRun.FailureTag));
    }

    [Fact]
    public async Task A_run_left_by_an_exception_ends_failed_with_the_reason()
    {
        string? id = null;
        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await using var run = await Client.StartRunAsync(Unique.Name("boom"));
            id = run.Id;
            await run.LogParamAsync("lr", "10");
            throw new InvalidOperationException("loss diverged at step 812");
        });

        Assert.Equal("loss diverged at step 812", thrown.Message);
        var stored = await Client.GetRunAsync(id!);
        Assert.Equal(RunStatus.Failed, stored.Status);
        Assert.Equal("System.InvalidOperationException: loss diverged at step 812", stored.Tags[ActiveRun.FailureTag]);
    }

    [Fact]
    public async Task An_exception_thrown_in_awaited_code_fails_the_run()
    {
        string? id = null;
        await Assert.ThrowsAsync<TimeoutException>(async () =>
        {
            await using var run = await Client.StartRunAsync(Unique.Name("deep"));
            id = run.Id;
            await TrainAsync();
        });

        Assert.Equal(RunStatus.Failed, (await Client.GetRunAsync(id!)).Status);

        static async Task TrainAsync()
        {
            await Task.Yield();
            throw new TimeoutException("data loader stalled");
        }
    }

    [Fact]
    public async Task A_handled_exception_followed_by_a_call_on_the_run_still_finishes()
    {
        string id;
        await using (var run = await Client.StartRunAsync(Unique.Name("handled")))
        {
            id = run.Id;
            try
            {
                throw new FormatException("bad checkpoint name, falling back");
            }
            catch (FormatException)
            {
            }

            await run.SetTagAsync("checkpoint", "fallback");
        }

        Assert.Equal(RunStatus.Finished, (await Client.GetRunAsync(id)).Status);
    }

    [Fact]
    public async Task An_explicit_end_status_is_kept_by_dispose()
    {
        string id;
        await using (var run = await Client.StartRunAsync(Unique.Name("killed")))
        {
            id = run.Id;
            await run.EndAsync(RunStatus.Killed);
            await run.EndAsync(RunStatus.Killed);
            Assert.True(run.IsEnded);
            await Assert.ThrowsAsync<InvalidOperationException>(() => run.SetTagAsync("late", "x"));
        }

        Assert.Equal(RunStatus.Killed, (await Client.GetRunAsync(id)).Status);
    }

    [Fact]
    public async Task A_param_conflict_surfaces_as_already_exists()
    {
        await using var run = await Client.StartRunAsync(Unique.Name("conflict"), parameters: new Dictionary<string, string> { ["seed"] = "1" });
        var e = await Assert.ThrowsAsync<RpcException>(() => run.LogParamAsync("seed", "2"));
        Assert.Equal(StatusCode.AlreadyExists, e.StatusCode);
        Assert.Contains("'seed'", e.Status.Detail, StringComparison.Ordinal);
        await run.EndAsync();
    }

    [Fact]
    public async Task Resuming_links_the_new_run_to_its_parent()
    {
        var experiment = Unique.Name("resume");
        string parentId;
        await using (var parent = await Client.StartRunAsync(experiment))
        {
            parentId = parent.Id;
            await parent.EndAsync(RunStatus.Killed);
        }

        await using var child = await Client.StartRunAsync(experiment, options: new RunStartOptions { ParentRunId = parentId, Hypothesis = "resume from step 5000" });
        Assert.Equal(parentId, child.Info.ParentRunId);
        Assert.Equal("resume from step 5000", child.Info.Note.Hypothesis);
        await child.EndAsync();
    }
}
