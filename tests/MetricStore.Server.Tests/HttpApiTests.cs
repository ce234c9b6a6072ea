using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MetricStore.Tests;

namespace MetricStore.Server.Tests;

/// <summary>The same operations over HTTP/JSON (gRPC JSON transcoding), as curl or a browser sends them.</summary>
public sealed class HttpApiTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    /// <summary>Each test fails if the shared server logged an error during it (xUnit does not fail a test for fixture cleanup).</summary>
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private HttpClient Http => fixture.Server.Http;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private async Task<JsonElement> PostOk(string path, string json)
    {
        using var response = await Http.PostAsync(path, Json(json));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST {path} answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Asserts the status and a JSON error body {code, message} whose message contains <paramref name="fragment"/>.</summary>
    private static async Task AssertError(HttpResponseMessage response, HttpStatusCode status, string fragment)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Contains(fragment, json.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    private async Task<(string Experiment, string RunId)> NewRunAsync()
    {
        var name = Unique.Name("http");
        await PostOk("/v1/experiments", $$"""{"name":"{{name}}"}""");
        var run = await PostOk("/v1/runs", $$$"""{"experimentName":"{{{name}}}","name":"r1","params":{"lr":"0.01"},"tags":{"team":"nlp"}}""");
        return (name, run.GetProperty("runId").GetString()!);
    }

    [Fact]
    public async Task Healthz_answers_200()
    {
        using var response = await Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Experiment_is_created_and_read_back_as_json_with_numeric_ids()
    {
        var name = Unique.Name("json");
        var created = await PostOk("/v1/experiments", $$$"""{"name":"{{{name}}}","description":"d","tags":{"k":"v"}}""");
        var id = created.GetProperty("experimentId").GetInt64();
        Assert.True(id > 0);

        var byId = await Http.GetFromJsonAsync<JsonElement>($"/v1/experiments/{id}");
        Assert.Equal(name, byId.GetProperty("name").GetString());
        var byName = await Http.GetFromJsonAsync<JsonElement>($"/v1/experiments/by-name/{Uri.EscapeDataString(name)}");
        Assert.Equal(id, byName.GetProperty("experimentId").GetInt64());
        Assert.Equal("v", byName.GetProperty("tags").GetProperty("k").GetString());

        var list = await Http.GetFromJsonAsync<JsonElement>("/v1/experiments?pageSize=1000");
        Assert.Contains(list.GetProperty("experiments").EnumerateArray(), e => e.GetProperty("name").GetString() == name);
    }

    [Fact]
    public async Task Duplicate_experiment_is_409_with_a_message_saying_it_exists()
    {
        var name = Unique.Name("dup");
        await PostOk("/v1/experiments", $$"""{"name":"{{name}}"}""");
        using var response = await Http.PostAsync("/v1/experiments", Json($$"""{"name":"{{name}}"}"""));
        await AssertError(response, HttpStatusCode.Conflict, "already exists");
    }

    [Theory]
    [InlineData("""{"name":""}""", "name is required")]
    [InlineData("""{"name":"a\u0001b"}""", "control character")]
    public async Task Bad_experiment_name_is_400_naming_the_field(string body, string fragment)
    {
        using var response = await Http.PostAsync("/v1/experiments", Json(body));
        await AssertError(response, HttpStatusCode.BadRequest, fragment);
    }

    [Fact]
    public async Task Over_long_name_is_400_and_stores_nothing()
    {
        var name = new string('n', 300);
        using var response = await Http.PostAsync("/v1/experiments", Json($$"""{"name":"{{name}}"}"""));
        await AssertError(response, HttpStatusCode.BadRequest, "300 characters");

        // Looking it up by name would fail validation whether stored or not: the listing is the check.
        var list = await Http.GetFromJsonAsync<JsonElement>("/v1/experiments?pageSize=1000");
        Assert.DoesNotContain(list.GetProperty("experiments").EnumerateArray(), e => e.GetProperty("name").GetString()!.StartsWith("nnnn", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("""{"name":"x" """)]
    [InlineData("""not json""")]
    [InlineData("""{"name": 12}""")]
    public async Task Malformed_json_body_is_400_with_a_json_error(string body)
    {
        var before = await Http.GetFromJsonAsync<JsonElement>("/v1/experiments?pageSize=1000");
        using var response = await Http.PostAsync("/v1/experiments", Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        Assert.Equal(3, JsonDocument.Parse(text).RootElement.GetProperty("code").GetInt32());
        var after = await Http.GetFromJsonAsync<JsonElement>("/v1/experiments?pageSize=1000");
        Assert.Equal(before.GetProperty("experiments").GetArrayLength(), after.GetProperty("experiments").GetArrayLength());
    }

    [Fact]
    public async Task Run_is_created_shown_listed_and_ended_over_http()
    {
        var (experiment, runId) = await NewRunAsync();
        var run = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("RUN_STATUS_RUNNING", run.GetProperty("status").GetString());
        Assert.Equal("0.01", run.GetProperty("params").GetProperty("lr").GetString());

        var ended = await PostOk($"/v1/runs/{runId}/end", """{"status":"RUN_STATUS_FINISHED"}""");
        Assert.Equal("RUN_STATUS_FINISHED", ended.GetProperty("status").GetString());
        Assert.True(ended.GetProperty("endTimeMs").GetInt64() > 0);

        var list = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs?experimentName={experiment}");
        Assert.Equal(runId, list.GetProperty("runs")[0].GetProperty("runId").GetString());
    }

    [Fact]
    public async Task Param_conflict_is_409_naming_the_key_and_both_values()
    {
        var (_, runId) = await NewRunAsync();
        using var response = await Http.PostAsync($"/v1/runs/{runId}/params", Json("""{"params":{"lr":"0.5","new":"1"}}"""));
        await AssertError(response, HttpStatusCode.Conflict, "param 'lr'");
        var run = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("0.01", run.GetProperty("params").GetProperty("lr").GetString());
        Assert.False(run.GetProperty("params").TryGetProperty("new", out _));

        await PostOk($"/v1/runs/{runId}/params", """{"params":{"lr":"0.01","batch":"32"}}""");
    }

    [Fact]
    public async Task Unknown_run_is_404_and_malformed_run_id_is_400()
    {
        using var unknown = await Http.GetAsync($"/v1/runs/{Core.RunId.New()}");
        await AssertError(unknown, HttpStatusCode.NotFound, "does not exist");
        using var malformed = await Http.GetAsync("/v1/runs/not-a-run");
        await AssertError(malformed, HttpStatusCode.BadRequest, "'not-a-run' is not a run id");
        using var tagOnUnknown = await Http.PostAsync($"/v1/runs/{Core.RunId.New()}/tags", Json("""{"tags":{"a":"b"}}"""));
        await AssertError(tagOnUnknown, HttpStatusCode.NotFound, "does not exist");
    }

    [Fact]
    public async Task Invalid_status_transition_is_400_and_changes_nothing()
    {
        var (_, runId) = await NewRunAsync();
        await PostOk($"/v1/runs/{runId}/end", """{"status":"RUN_STATUS_KILLED"}""");
        using var response = await Http.PostAsync($"/v1/runs/{runId}/end", Json("""{"status":"RUN_STATUS_FINISHED"}"""));
        await AssertError(response, HttpStatusCode.BadRequest, "already ended as KILLED");
        var run = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("RUN_STATUS_KILLED", run.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Tags_are_set_and_deleted_and_note_is_written_over_http()
    {
        var (_, runId) = await NewRunAsync();
        await PostOk($"/v1/runs/{runId}/tags", """{"tags":{"stage":"eval"}}""");
        using (var delete = await Http.DeleteAsync($"/v1/runs/{runId}/tags/team"))
        {
            Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
        }

        using (var again = await Http.DeleteAsync($"/v1/runs/{runId}/tags/team"))
        {
            await AssertError(again, HttpStatusCode.NotFound, "no tag 'team'");
        }

        var note = await PostOk($"/v1/runs/{runId}/note", """{"hypothesis":"## why\nbecause","outcome":"it worked"}""");
        Assert.Equal("## why\nbecause", note.GetProperty("hypothesis").GetString());
        var run = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("eval", run.GetProperty("tags").GetProperty("stage").GetString());
        Assert.False(run.GetProperty("tags").TryGetProperty("team", out _));
        Assert.Equal("it worked", run.GetProperty("note").GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task Too_many_tags_in_one_request_is_400_and_stores_none()
    {
        var (_, runId) = await NewRunAsync();
        var tags = string.Join(',', Enumerable.Range(0, 501).Select(i => $"\"t{i}\":\"v\""));
        using var response = await Http.PostAsync($"/v1/runs/{runId}/tags", Json("{\"tags\":{" + tags + "}}"));
        await AssertError(response, HttpStatusCode.BadRequest, "501 entries");
        var run = await Http.GetFromJsonAsync<JsonElement>($"/v1/runs/{runId}");
        Assert.Equal("team", Assert.Single(run.GetProperty("tags").EnumerateObject()).Name);
    }
}
