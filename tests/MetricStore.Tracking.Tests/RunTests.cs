using MetricStore.Core;

namespace MetricStore.Tracking.Tests;

public sealed class RunTests : IDisposable
{
    private readonly StoreHarness _h = new();
    private readonly Experiment _experiment;

    public RunTests()
    {
        _experiment = _h.Store.CreateExperiment("runs");
    }

    private TrackingStore Store => _h.Store;

    public void Dispose() => _h.Dispose();

    private Run NewRun(IReadOnlyDictionary<string, string>? parameters = null) =>
        Store.CreateRun(new NewRun { ExperimentName = _experiment.Name, Params = parameters });

    [Fact]
    public void Created_run_is_running_with_its_params_tags_note_and_source()
    {
        var source = new SourceInfo { GitCommit = new string('a', 40), GitBranch = "main", GitDirty = true, CommandLine = "train.py --lr 0.1", Host = "gpu-7", Os = "Linux", Runtime = ".NET 10", User = "ada" };
        var run = Store.CreateRun(new NewRun
        {
            ExperimentId = _experiment.Id,
            Name = "baseline",
            Params = new Dictionary<string, string> { ["lr"] = "0.1", ["empty"] = "" },
            Tags = new Dictionary<string, string> { ["team"] = "nlp" },
            Source = source,
            Note = new Note("lower lr converges", ""),
        });

        Assert.True(RunId.IsWellFormed(run.Id));
        Assert.Equal(RunStatus.Running, run.Status);
        Assert.Equal(1_700_000_000_000, run.StartTimeMs);
        Assert.Null(run.EndTimeMs);
        Assert.Equal("baseline", run.Name);
        Assert.Equal("runs", run.ExperimentName);
        Assert.Equal("0.1", run.Params["lr"]);
        Assert.Equal("", run.Params["empty"]);
        Assert.Equal("nlp", run.Tags["team"]);
        Assert.Equal("lower lr converges", run.Note.Hypothesis);
        Assert.Equal(source, run.Source);
        Assert.Equal(run.Source, Store.GetRun(run.Id).Source);
    }

    [Fact]
    public void A_run_without_a_name_gets_one_from_its_id()
    {
        var run = NewRun();
        Assert.Equal("run-" + run.Id[^8..], run.Name);
    }

    [Fact]
    public void A_run_in_an_unknown_experiment_is_refused()
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.CreateRun(new NewRun { ExperimentName = "missing" }));
        Assert.Equal(ErrorCode.NotFound, e.Code);
        Assert.Contains("'missing' does not exist", e.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.CreateRun(new NewRun { ExperimentId = 777 })).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<MetricStoreException>(() => Store.CreateRun(new NewRun())).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<MetricStoreException>(
            () => Store.CreateRun(new NewRun { ExperimentId = _experiment.Id, ExperimentName = _experiment.Name })).Code);
    }

    [Fact]
    public void A_resumed_run_links_to_its_parent_which_must_exist()
    {
        var parent = NewRun();
        var child = Store.CreateRun(new NewRun { ExperimentId = _experiment.Id, ParentRunId = parent.Id });
        Assert.Equal(parent.Id, Store.GetRun(child.Id).ParentRunId);

        var e = Assert.Throws<MetricStoreException>(() => Store.CreateRun(new NewRun { ExperimentId = _experiment.Id, ParentRunId = RunId.New() }));
        Assert.Equal(ErrorCode.NotFound, e.Code);
        Assert.Contains("parent_run_id", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(RunStatus.Finished)]
    [InlineData(RunStatus.Failed)]
    [InlineData(RunStatus.Killed)]
    public void Ending_a_running_run_sets_status_and_end_time(RunStatus status)
    {
        var run = NewRun();
        _h.Clock.Advance(TimeSpan.FromMinutes(3));
        var ended = Store.EndRun(run.Id, status);
        Assert.Equal(status, ended.Status);
        Assert.Equal(run.StartTimeMs + 180_000, ended.EndTimeMs);
    }

    [Fact]
    public void Ending_again_with_the_same_status_is_a_no_op()
    {
        var run = NewRun();
        var first = Store.EndRun(run.Id, RunStatus.Finished);
        _h.Clock.Advance(TimeSpan.FromMinutes(1));
        var second = Store.EndRun(run.Id, RunStatus.Finished);
        Assert.Equal(first.EndTimeMs, second.EndTimeMs);
    }

    [Theory]
    [InlineData(RunStatus.Finished, RunStatus.Killed)]
    [InlineData(RunStatus.Failed, RunStatus.Finished)]
    [InlineData(RunStatus.Killed, RunStatus.Failed)]
    public void An_ended_run_never_changes_status(RunStatus first, RunStatus second)
    {
        var run = NewRun();
        Store.EndRun(run.Id, first);
        var e = Assert.Throws<MetricStoreException>(() => Store.EndRun(run.Id, second));
        Assert.Equal(ErrorCode.FailedPrecondition, e.Code);
        Assert.Contains(first.ToWireName(), e.Message, StringComparison.Ordinal);
        Assert.Contains(second.ToWireName(), e.Message, StringComparison.Ordinal);
        Assert.Equal(first, Store.GetRun(run.Id).Status);
    }

    [Fact]
    public void Running_is_not_an_end_status()
    {
        var run = NewRun();
        var e = Assert.Throws<MetricStoreException>(() => Store.EndRun(run.Id, RunStatus.Running));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Equal(RunStatus.Running, Store.GetRun(run.Id).Status);
    }

    [Fact]
    public void An_end_time_before_the_start_is_refused()
    {
        var run = NewRun();
        var e = Assert.Throws<MetricStoreException>(() => Store.EndRun(run.Id, RunStatus.Finished, run.StartTimeMs - 1));
        Assert.Equal(ErrorCode.InvalidArgument, e.Code);
        Assert.Equal(RunStatus.Running, Store.GetRun(run.Id).Status);
    }

    [Fact]
    public void Unknown_and_malformed_run_ids_are_told_apart()
    {
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.GetRun(RunId.New())).Code);
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.EndRun(RunId.New(), RunStatus.Finished)).Code);
        Assert.Equal(ErrorCode.InvalidArgument, Assert.Throws<MetricStoreException>(() => Store.GetRun("abc")).Code);
    }

    [Fact]
    public void Logging_a_param_again_with_the_same_value_is_fine()
    {
        var run = NewRun(new Dictionary<string, string> { ["lr"] = "0.01" });
        Store.LogParams(run.Id, new Dictionary<string, string> { ["lr"] = "0.01", ["batch"] = "64" });
        Assert.Equal(2, Store.GetRun(run.Id).Params.Count);
    }

    [Fact]
    public void Changing_a_param_is_refused_naming_the_key_and_both_values_and_stores_nothing()
    {
        var run = NewRun(new Dictionary<string, string> { ["lr"] = "0.01" });
        var e = Assert.Throws<MetricStoreException>(() =>
            Store.LogParams(run.Id, new Dictionary<string, string> { ["new"] = "1", ["lr"] = "0.02" }));
        Assert.Equal(ErrorCode.AlreadyExists, e.Code);
        Assert.Contains("'lr'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'0.01'", e.Message, StringComparison.Ordinal);
        Assert.Contains("'0.02'", e.Message, StringComparison.Ordinal);
        var stored = Store.GetRun(run.Id).Params;
        Assert.Equal("0.01", stored["lr"]);
        Assert.False(stored.ContainsKey("new"), "a refused request must store none of its params");
    }

    [Fact]
    public void Params_over_the_limits_are_refused_and_nothing_is_stored()
    {
        var run = NewRun();
        Assert.Throws<MetricStoreException>(() => Store.LogParams(run.Id, new Dictionary<string, string> { ["ok"] = "1", ["big"] = new string('v', Limits.MaxParamValueLength + 1) }));
        Assert.Throws<MetricStoreException>(() => Store.LogParams(run.Id, new Dictionary<string, string> { [new string('k', Limits.MaxKeyLength + 1)] = "1" }));
        var many = Enumerable.Range(0, Limits.MaxItemsPerRequest + 1).ToDictionary(i => $"p{i}", i => "v");
        var e = Assert.Throws<MetricStoreException>(() => Store.LogParams(run.Id, many));
        Assert.Contains("501 entries", e.Message, StringComparison.Ordinal);
        Assert.Throws<MetricStoreException>(() => Store.LogParams(run.Id, new Dictionary<string, string>()));
        Assert.Empty(Store.GetRun(run.Id).Params);
    }

    [Fact]
    public void Params_on_an_unknown_run_are_not_found()
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.LogParams(RunId.New(), new Dictionary<string, string> { ["a"] = "b" }));
        Assert.Equal(ErrorCode.NotFound, e.Code);
    }

    [Fact]
    public void Tags_are_set_overwritten_and_deleted()
    {
        var run = NewRun();
        Store.SetTags(run.Id, new Dictionary<string, string> { ["stage"] = "warmup", ["team"] = "nlp" });
        Store.SetTags(run.Id, new Dictionary<string, string> { ["stage"] = "main" });
        Assert.Equal("main", Store.GetRun(run.Id).Tags["stage"]);
        Store.DeleteTag(run.Id, "stage");
        Assert.Equal(["team"], Store.GetRun(run.Id).Tags.Keys);
        var e = Assert.Throws<MetricStoreException>(() => Store.DeleteTag(run.Id, "stage"));
        Assert.Equal(ErrorCode.NotFound, e.Code);
    }

    [Fact]
    public void Tags_can_change_after_the_run_ended()
    {
        var run = NewRun();
        Store.EndRun(run.Id, RunStatus.Finished);
        Store.SetTags(run.Id, new Dictionary<string, string> { ["reviewed"] = "yes" });
        Assert.Equal("yes", Store.GetRun(run.Id).Tags["reviewed"]);
    }

    [Fact]
    public void Note_parts_are_replaced_independently()
    {
        var run = NewRun();
        Store.SetNote(run.Id, "# Hypothesis\nwarmup helps", null);
        var note = Store.SetNote(run.Id, null, "it did **not**");
        Assert.Equal("# Hypothesis\nwarmup helps", note.Hypothesis);
        Assert.Equal("it did **not**", note.Outcome);
        Assert.Throws<MetricStoreException>(() => Store.SetNote(run.Id, new string('x', Limits.MaxNoteLength + 1), null));
        Assert.Equal("# Hypothesis\nwarmup helps", Store.GetRun(run.Id).Note.Hypothesis);
    }

    [Fact]
    public void Runs_list_newest_first_across_pages()
    {
        var created = new List<Run>();
        for (var i = 0; i < 7; i++)
        {
            created.Add(NewRun());
            _h.Clock.Advance(TimeSpan.FromSeconds(i % 2)); // some runs share a start time; the id breaks ties
        }

        var listed = new List<string>();
        string? token = null;
        do
        {
            var page = Store.ListRuns(_experiment.Id, 3, token);
            listed.AddRange(page.Items.Select(r => r.Id));
            token = page.NextPageToken;
        }
        while (token is not null);

        // Newest start first; ties by id, descending (UUIDv7 order within one millisecond is random).
        var expected = created.OrderByDescending(r => r.StartTimeMs).ThenByDescending(r => r.Id, StringComparer.Ordinal).Select(r => r.Id);
        Assert.Equal(expected, listed);
        Assert.True(created.Select(r => r.StartTimeMs).Distinct().Count() < created.Count, "the test needs runs that share a start time");
    }

    [Fact]
    public void Runs_of_an_unknown_experiment_are_not_found()
    {
        Assert.Equal(ErrorCode.NotFound, Assert.Throws<MetricStoreException>(() => Store.ListRuns(12345)).Code);
    }

    [Fact]
    public void Source_fields_over_the_limit_are_refused()
    {
        var e = Assert.Throws<MetricStoreException>(() => Store.CreateRun(new NewRun
        {
            ExperimentId = _experiment.Id,
            Source = new SourceInfo { Host = new string('h', Limits.MaxSourceFieldLength + 1) },
        }));
        Assert.Contains("source.host", e.Message, StringComparison.Ordinal);
        Assert.Empty(Store.ListRuns(_experiment.Id).Items);
    }
}
