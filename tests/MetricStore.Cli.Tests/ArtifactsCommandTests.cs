using System.Security.Cryptography;
using System.Text.Json;
using MetricStore.Tests;

namespace MetricStore.Cli.Tests;

/// <summary>metricstore artifacts put|get|ls against a real server, with real files in a temp directory.</summary>
public sealed class ArtifactsCommandTests(CliFixture fixture) : IClassFixture<CliFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private Task<CliResult> Run(params string[] args) => Cli.RunAsync([.. args, "--server", fixture.Url]);

    private async Task<string> NewRunAsync()
    {
        var experiment = Unique.Name("artifacts");
        (await Run("experiments", "create", experiment)).Ok();
        return (await Run("runs", "create", "--experiment", experiment)).Ok().Output.Trim();
    }

    [Fact]
    public async Task Put_a_file_and_a_directory_list_them_and_get_them_back_verified()
    {
        using var temp = new TempDirectory();
        var run = await NewRunAsync();
        var model = Path.Combine(temp.Path, "model.bin");
        var bytes = RandomNumberGenerator.GetBytes(2_500_000);
        await File.WriteAllBytesAsync(model, bytes);
        var configs = Directory.CreateDirectory(Path.Combine(temp.Path, "configs", "nested"));
        await File.WriteAllTextAsync(Path.Combine(temp.Path, "configs", "a.yaml"), "lr: 0.01\n");
        await File.WriteAllTextAsync(Path.Combine(configs.FullName, "b.yaml"), "seed: 7\n");

        var put = (await Run("artifacts", "put", run, model, "--path", "checkpoints/final.bin", "--json")).Ok();
        var info = JsonDocument.Parse(put.Output).RootElement[0];
        Assert.Equal("checkpoints/final.bin", info.GetProperty("path").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), info.GetProperty("sha256").GetString());
        (await Run("artifacts", "put", run, Path.Combine(temp.Path, "configs"), "--path", "configs")).Ok();

        var ls = (await Run("artifacts", "ls", run)).Ok().Output;
        var lines = ls.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("PATH", lines[0], StringComparison.Ordinal);
        Assert.Equal(["checkpoints/final.bin", "configs/a.yaml", "configs/nested/b.yaml"], lines.Skip(1).Select(l => l.Split(' ')[0]));
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(bytes)), ls, StringComparison.Ordinal); // not cut

        var outFile = Path.Combine(temp.Path, "back", "final.bin");
        (await Run("artifacts", "get", run, "checkpoints/final.bin", "--out", outFile)).Ok();
        Assert.Equal(bytes, await File.ReadAllBytesAsync(outFile));

        var outDir = Path.Combine(temp.Path, "configs-back");
        var got = (await Run("artifacts", "get", run, "configs", "--out", outDir, "--json")).Ok();
        Assert.Equal(2, JsonDocument.Parse(got.Output).RootElement.GetArrayLength());
        Assert.Equal("seed: 7\n", await File.ReadAllTextAsync(Path.Combine(outDir, "nested", "b.yaml")));
        Assert.Equal("lr: 0.01\n", await File.ReadAllTextAsync(Path.Combine(outDir, "a.yaml")));
    }

    [Fact]
    public async Task Bad_paths_and_missing_artifacts_are_clear_errors_and_write_nothing()
    {
        using var temp = new TempDirectory();
        var run = await NewRunAsync();
        var file = Path.Combine(temp.Path, "x.txt");
        await File.WriteAllTextAsync(file, "x");

        var escape = await Run("artifacts", "put", run, file, "--path", "../../etc/x.txt");
        Assert.Equal(CliApp.ExitRefused, escape.ExitCode);
        Assert.Contains("'..'", escape.Error, StringComparison.Ordinal);

        var missing = await Run("artifacts", "get", run, "nothing/here.bin", "--out", Path.Combine(temp.Path, "out.bin"));
        Assert.Equal(CliApp.ExitRefused, missing.ExitCode);
        Assert.Contains("no artifact at or under 'nothing/here.bin'", missing.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(temp.Path, "out.bin")));
        Assert.Equal(["x.txt"], Directory.GetFiles(temp.Path).Select(Path.GetFileName)); // no partial files

        var noLocal = await Run("artifacts", "put", run, Path.Combine(temp.Path, "absent.bin"));
        Assert.Equal(CliApp.ExitUsage, noLocal.ExitCode);
        Assert.Contains("absent.bin", noLocal.Error, StringComparison.Ordinal);
    }
}
