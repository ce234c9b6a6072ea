using System.Text.Json;
using MetricStore.Tests;

namespace MetricStore.Cli.Tests;

public sealed class CliFixture : IAsyncLifetime
{
    private TestServer? _server;

    internal TestServer Server => _server ?? throw new InvalidOperationException("the server has not started");

    public string Url => Server.Server.GrpcAddress.ToString();

    public async Task InitializeAsync() => _server = await TestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>The metricstore command against a real server, run in-process.</summary>
public sealed class CliCommandTests(CliFixture fixture) : IClassFixture<CliFixture>, IDisposable
{
    /// <summary>Each test fails if the shared server logged an error during it (xUnit does not fail a test for fixture cleanup).</summary>
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private Task<CliResult> Run(params string[] args) => Cli.RunAsync([.. args, "--server", fixture.Url]);

    [Fact]
    public async Task Runs_search_filters_orders_and_prints_a_table_or_json()
    {
        var experiment = Unique.Name("search");
        (await Run("experiments", "create", experiment)).Ok();
        var adam = (await Run("runs", "create", "--experiment", experiment, "--name", "adam-run", "--param", "optimizer=adamw", "--tag", "team=nlp")).Ok().Output.Trim();
        var sgd = (await Run("runs", "create", "--experiment", experiment, "--name", "sgd-run", "--param", "optimizer=sgd")).Ok().Output.Trim();

        var table = (await Run("runs", "search", "params.optimizer LIKE 'adam%'", "--experiment", experiment)).Ok();
        Assert.Contains(adam, table.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(sgd, table.Output, StringComparison.Ordinal);
        Assert.StartsWith("RUN_ID", table.Output, StringComparison.Ordinal);

        var json = (await Run("runs", "search", "tags.team IS NULL or tags.team = 'nlp'", "--experiment", experiment, "--order-by", "name desc", "--max", "1", "--json")).Ok();
        var ids = JsonDocument.Parse(json.Output).RootElement.EnumerateArray().Select(r => r.GetProperty("id").GetString()).ToList();
        Assert.Equal([sgd], ids); // names descending: sgd-run before adam-run; --max 1

        var bad = await Run("runs", "search", "params.optimizer LIKE", "--experiment", experiment);
        Assert.Equal(CliApp.ExitRefused, bad.ExitCode);
        Assert.Contains("position", bad.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Runs_compare_shows_params_that_differ_and_metric_summaries_side_by_side()
    {
        var experiment = Unique.Name("compare");
        (await Run("experiments", "create", experiment)).Ok();
        var a = (await Run("runs", "create", "--experiment", experiment, "--name", "slow", "--param", "lr=0.01", "--param", "batch=64")).Ok().Output.Trim();
        var b = (await Run("runs", "create", "--experiment", experiment, "--name", "fast", "--param", "lr=0.1", "--param", "batch=64", "--param", "warmup=100")).Ok().Output.Trim();
        foreach (var (id, last) in new[] { (a, 0.25), (b, 0.5) })
        {
            await using var run = await fixture.Server.Client.AttachRunAsync(id);
            run.Log("loss", 0, 1.0);
            run.Log("loss", 1, last);
            await run.FlushAsync();
        }

        var table = (await Run("runs", "compare", a, b)).Ok();
        Assert.Contains("params that differ:", table.Output, StringComparison.Ordinal);
        Assert.Matches(@"lr\s+0\.01\s+0\.1", table.Output);
        Assert.Matches(@"warmup\s+-\s+100", table.Output);
        Assert.DoesNotContain("batch", table.Output, StringComparison.Ordinal); // equal: left out
        Assert.Matches(@"loss\s+0\.25\s+\[0\.25 \.\. 1\]\s+0\.5\s+\[0\.5 \.\. 1\]", table.Output);

        var json = JsonDocument.Parse((await Run("runs", "compare", a, b, "--all-params", "--json")).Ok().Output).RootElement;
        Assert.Equal("[\"64\",\"64\"]", json.GetProperty("params").GetProperty("batch").GetRawText());
        Assert.Equal(0.5, json.GetProperty("metrics").GetProperty("loss")[1].GetProperty("last").GetDouble());
        Assert.Equal(CliApp.ExitUsage, (await Run("runs", "compare", a)).ExitCode);
    }

    [Fact]
    public async Task Experiments_create_and_list()
    {
        var name = Unique.Name("cli");
        var created = (await Run("experiments", "create", name, "--description", "from the CLI")).Ok();
        Assert.Contains($"created experiment '{name}'", created.Output, StringComparison.Ordinal);

        var table = (await Run("experiments", "list")).Ok();
        var header = table.Output.Split('\n')[0];
        Assert.StartsWith("ID", header, StringComparison.Ordinal);
        Assert.Contains("NAME", header, StringComparison.Ordinal);
        Assert.Contains(name, table.Output, StringComparison.Ordinal);
        Assert.Contains("from the CLI", table.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Creating_an_existing_experiment_fails_on_stderr_saying_it_exists()
    {
        var name = Unique.Name("dup");
        (await Run("experiments", "create", name)).Ok();
        var again = await Run("experiments", "create", name);
        Assert.Equal(CliApp.ExitRefused, again.ExitCode);
        Assert.Empty(again.Output);
        Assert.Contains($"experiment '{name}' already exists", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Json_output_of_a_created_object_is_one_object_with_its_id()
    {
        var name = Unique.Name("json");
        var experiment = (await Run("experiments", "create", name, "--json")).Ok();
        var e = JsonDocument.Parse(experiment.Output).RootElement;
        Assert.True(e.GetProperty("id").GetInt64() > 0);
        Assert.Equal(name, e.GetProperty("name").GetString());

        var run = (await Run("runs", "create", "--experiment", name, "--param", "lr=0.1", "--json")).Ok();
        var r = JsonDocument.Parse(run.Output).RootElement;
        Assert.Equal(32, r.GetProperty("id").GetString()!.Length);
        Assert.Equal(r.GetProperty("id").GetString(), r.GetProperty("runId").GetString());
        Assert.Equal("0.1", r.GetProperty("params").GetProperty("lr").GetString());
        Assert.Equal(e.GetProperty("id").GetInt64(), r.GetProperty("experimentId").GetInt64());

        var list = (await Run("experiments", "list", "--json")).Ok();
        Assert.Contains(JsonDocument.Parse(list.Output).RootElement.EnumerateArray(), x => x.GetProperty("name").GetString() == name);
    }

    [Fact]
    public async Task Runs_create_prints_only_the_id_then_list_show_and_end_work()
    {
        var name = Unique.Name("runs");
        (await Run("experiments", "create", name)).Ok();
        var created = (await Run("runs", "create", "--experiment", name, "--name", "baseline", "--param", "lr=0.01", "--param", "batch=64", "--tag", "team=nlp")).Ok();
        var id = created.Output.Trim();
        Assert.True(Core.RunId.IsWellFormed(id), created.ToString());

        var list = (await Run("runs", "list", "--experiment", name)).Ok();
        Assert.Contains(id, list.Output, StringComparison.Ordinal);
        Assert.Contains("RUNNING", list.Output, StringComparison.Ordinal);
        Assert.Contains("batch=64 lr=0.01", list.Output, StringComparison.Ordinal);

        (await Run("runs", "end", id, "--status", "FINISHED")).Ok();
        var show = (await Run("runs", "show", id)).Ok();
        Assert.Contains("status      FINISHED", show.Output, StringComparison.Ordinal);
        Assert.Contains("lr = 0.01", show.Output, StringComparison.Ordinal);
        Assert.Contains("team = nlp", show.Output, StringComparison.Ordinal);

        var json = JsonDocument.Parse((await Run("runs", "show", id, "--json")).Ok().Output).RootElement;
        Assert.Equal("RUN_STATUS_FINISHED", json.GetProperty("status").GetString());
        Assert.True(json.GetProperty("endTimeMs").GetInt64() >= json.GetProperty("startTimeMs").GetInt64());
    }

    [Fact]
    public async Task Ending_an_ended_run_with_another_status_fails_and_says_why()
    {
        var name = Unique.Name("end");
        (await Run("experiments", "create", name)).Ok();
        var id = (await Run("runs", "create", "--experiment", name)).Ok().Output.Trim();
        (await Run("runs", "end", id, "--status", "killed")).Ok();
        var again = await Run("runs", "end", id, "--status", "FINISHED");
        Assert.Equal(CliApp.ExitRefused, again.ExitCode);
        Assert.Contains("already ended as KILLED", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_in_a_missing_experiment_fails_and_says_to_create_it()
    {
        var result = await Run("runs", "create", "--experiment", Unique.Name("missing"));
        Assert.Equal(CliApp.ExitRefused, result.ExitCode);
        Assert.Contains("does not exist; create it first", result.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("runs", "create", "--experiment", "x", "--param", "novalue")]
    [InlineData("runs", "end", "0123", "--status", "DONE")]
    [InlineData("runs", "create")]
    [InlineData("experiments", "frobnicate")]
    public async Task Bad_usage_exits_2_with_a_message(params string[] args)
    {
        var result = await Run(args);
        Assert.Equal(CliApp.ExitUsage, result.ExitCode);
        Assert.Contains("error:", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_run_id_is_reported()
    {
        var result = await Run("runs", "show", Core.RunId.New());
        Assert.Equal(CliApp.ExitRefused, result.ExitCode);
        Assert.Contains("does not exist", result.Error, StringComparison.Ordinal);
        var malformed = await Run("runs", "show", "xyz");
        Assert.Contains("is not a run id", malformed.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unreachable_server_exits_3_and_says_how_to_fix_it()
    {
        var port = Ports.Unused();
        var result = await Cli.RunAsync("experiments", "list", "--server", $"http://127.0.0.1:{port}");
        Assert.Equal(CliApp.ExitUnavailable, result.ExitCode);
        Assert.Contains("cannot reach the MetricStore server", result.Error, StringComparison.Ordinal);
        Assert.Contains("metricstore serve", result.Error, StringComparison.Ordinal);
    }
}
