using System.Text;
using System.Text.Json;
using MetricStore.Tests;

namespace MetricStore.Cli.Tests;

/// <summary>
/// From a finished run to a Production model through the CLI alone, with auth on (tokens from
/// 'users add') and off (names from --user), against a real server on a temp directory.
/// </summary>
public sealed class RegistryCommandTests
{
    private static JsonElement Json(CliResult result) => JsonDocument.Parse(result.Ok().Output).RootElement;

    [Fact]
    public async Task With_auth_a_writer_requests_another_user_approves_and_a_reader_pulls_the_verified_model()
    {
        using var data = new TempDirectory();
        var tokens = new Dictionary<string, string>();
        foreach (var (name, role) in new[] { ("wendy", "writer"), ("ann", "approver"), ("rita", "reader") })
        {
            var added = Json(await Cli.RunAsync("users", "add", name, "--role", role, "--data", data.Path, "--json"));
            tokens[name] = added.GetProperty("token").GetString()!;
            Assert.StartsWith("mst_", tokens[name], StringComparison.Ordinal);
        }

        var users = (await Cli.RunAsync("users", "ls", "--data", data.Path)).Ok().Output;
        Assert.Contains("approver", users, StringComparison.Ordinal);
        Assert.DoesNotContain(tokens["ann"], users, StringComparison.Ordinal);

        await using var server = await TestServer.StartAsync(data.Path, configure: o => o with { Auth = true });
        var url = server.Server.GrpcAddress.ToString();
        Task<CliResult> As(string user, params string[] args) => Cli.RunAsync([.. args, "--server", url, "--token", tokens[user]]);

        var noToken = await Cli.RunAsync("experiments", "list", "--server", url);
        Assert.Equal(CliApp.ExitRefused, noToken.ExitCode);
        Assert.Contains("requires a token", noToken.Error, StringComparison.Ordinal);

        (await As("wendy", "experiments", "create", "fraud")).Ok();
        var run = (await As("wendy", "runs", "create", "--experiment", "fraud", "--param", "lr=0.01")).Ok().Output.Trim();
        var modelFile = Path.Combine(data.Path, "..", Guid.NewGuid().ToString("N") + ".onnx");
        await File.WriteAllTextAsync(modelFile, "onnx bytes");
        try
        {
            (await As("wendy", "artifacts", "put", run, modelFile, "--path", "model/model.onnx")).Ok();
        }
        finally
        {
            File.Delete(modelFile);
        }

        (await As("wendy", "registry", "create-model", "fraud-scorer", "--description", "card fraud")).Ok();
        var version = Json(await As("wendy", "registry", "create-version", "fraud-scorer", "--run", run, "--artifact", "model/model.onnx", "--json"));
        Assert.Equal(1, version.GetProperty("version").GetInt64());
        (await As("wendy", "registry", "request", "fraud-scorer/1", "--stage", "Staging")).Ok();
        var request = Json(await As("wendy", "registry", "request", "fraud-scorer/1", "--stage", "Production", "--comment", "ship it", "--json"));
        var requestId = request.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);

        var waiting = (await As("ann", "registry", "requests", "fraud-scorer", "--pending")).Ok().Output;
        Assert.Contains("ship it", waiting, StringComparison.Ordinal);
        Assert.Equal(2, waiting.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // the header and the one pending request

        var self = await As("wendy", "registry", "approve", requestId);
        Assert.Equal(CliApp.ExitRefused, self.ExitCode);
        Assert.Contains("PermissionDenied", self.Error, StringComparison.Ordinal);
        (await As("ann", "registry", "approve", requestId, "--comment", "metrics look right")).Ok();

        var resolved = Json(await As("rita", "registry", "resolve", "fraud-scorer@Production", "--json"));
        Assert.Equal(1, resolved.GetProperty("version").GetProperty("version").GetInt64());
        var sha = resolved.GetProperty("artifactSha256").GetString();

        var outDir = Path.Combine(data.Path, "..", Guid.NewGuid().ToString("N"));
        try
        {
            var pulled = (await As("rita", "registry", "pull", "fraud-scorer@Production", "--out", outDir)).Ok();
            Assert.Contains(sha!, pulled.Output, StringComparison.Ordinal);
            Assert.Equal("onnx bytes", await File.ReadAllTextAsync(Path.Combine(outDir, "model.onnx")));
        }
        finally
        {
            if (Directory.Exists(outDir))
            {
                Directory.Delete(outDir, recursive: true);
            }
        }

        var show = (await As("rita", "registry", "show", "fraud-scorer")).Ok().Output;
        Assert.Contains("Production", show, StringComparison.Ordinal);
        Assert.Contains(sha!, show, StringComparison.Ordinal);

        var lineage = (await As("rita", "registry", "lineage", "fraud-scorer/1")).Ok().Output;
        Assert.Contains(run, lineage, StringComparison.Ordinal);
        Assert.Contains("lr=0.01", lineage, StringComparison.Ordinal);
        Assert.Contains("model/model.onnx", lineage, StringComparison.Ordinal);

        var audit = Json(await As("rita", "registry", "audit", "fraud-scorer", "--json"));
        var actions = audit.EnumerateArray().Select(a => $"{a.GetProperty("action").GetString()}/{a.GetProperty("actor").GetString()}/{(a.GetProperty("allowed").GetBoolean() ? "ok" : "refused")}").ToList();
        Assert.Contains("approve/wendy/refused", actions);
        Assert.Contains("approve/ann/ok", actions);
        Assert.Equal("transition/ann/ok", actions[^1]);

        var hook = Json(await As("wendy", "registry", "webhooks", "add", "fraud-scorer", "--url", "http://127.0.0.1:9/hook", "--secret", "a-very-long-secret", "--event", "stage.changed", "--json"));
        var hookId = hook.GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Contains("stage.changed", (await As("rita", "registry", "webhooks", "ls", "fraud-scorer")).Ok().Output, StringComparison.Ordinal);
        Assert.StartsWith("ID", (await As("rita", "registry", "webhooks", "deliveries", hookId)).Ok().Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_auth_names_come_from_user_and_the_same_flow_works()
    {
        await using var server = await TestServer.StartAsync();
        var url = server.Server.GrpcAddress.ToString();
        Task<CliResult> As(string user, params string[] args) => Cli.RunAsync([.. args, "--server", url, "--user", user]);

        (await As("wendy", "experiments", "create", "e")).Ok();
        var run = (await As("wendy", "runs", "create", "--experiment", "e")).Ok().Output.Trim();
        await server.Client.UploadArtifactAsync(run, "m.bin", new MemoryStream(Encoding.UTF8.GetBytes("m")));
        (await As("wendy", "registry", "create-model", "m")).Ok();
        (await As("wendy", "registry", "create-version", "m", "--run", run, "--artifact", "m.bin")).Ok();
        (await As("wendy", "registry", "request", "m/1", "--stage", "Staging")).Ok();
        var id = Json(await As("wendy", "registry", "request", "m/1", "--stage", "Production", "--json")).GetProperty("id").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(CliApp.ExitRefused, (await As("wendy", "registry", "approve", id)).ExitCode); // still not your own
        (await As("ann", "registry", "approve", id)).Ok();
        (await As("ann", "registry", "set-alias", "m/1", "champion")).Ok();
        var resolved = (await As("anyone", "registry", "resolve", "m@champion")).Ok().Output;
        Assert.Contains("m/1", resolved, StringComparison.Ordinal);
        var audit = (await As("anyone", "registry", "audit", "m")).Ok().Output;
        Assert.Contains("ann", audit, StringComparison.Ordinal);
        Assert.Contains("REFUSED", audit, StringComparison.Ordinal);
    }
}
