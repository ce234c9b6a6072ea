using System.Diagnostics;
using System.Text;
using MetricStore.Protocol.V1;
using MetricStore.Tests;

namespace MetricStore.Client.Tests;

/// <summary>Automatic capture at run start, with a real git repository in a temp directory.</summary>
public sealed class CaptureTests(ClientFixture fixture) : IClassFixture<ClientFixture>, IDisposable
{
    public void Dispose() => fixture.Server.AssertNoUnexpectedErrors();

    private MetricStoreClient ClientWith(CaptureOptions capture) =>
        new(new MetricStoreClientOptions { Address = fixture.Server.Server.GrpcAddress, Capture = capture });

    private static string Git(string directory, params string[] args)
    {
        var start = new ProcessStartInfo("git") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-C");
        start.ArgumentList.Add(directory);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["GIT_AUTHOR_NAME"] = start.Environment["GIT_COMMITTER_NAME"] = "test";
        start.Environment["GIT_AUTHOR_EMAIL"] = start.Environment["GIT_COMMITTER_EMAIL"] = "test@example.com";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"git {string.Join(' ', args)}: {error}");
        return output.Trim();
    }

    private static string NewRepository(TempDirectory temp)
    {
        var repo = Path.Combine(temp.Path, "repo");
        Directory.CreateDirectory(repo);
        Git(repo, "init", "-q", "-b", "exp/lr-sweep");
        File.WriteAllText(Path.Combine(repo, "train.py"), "lr = 0.1\n");
        Git(repo, "add", "train.py");
        Git(repo, "commit", "-q", "-m", "first");
        Git(repo, "remote", "add", "origin", "https://alice:s3cret-token@git.example.com/team/models.git");
        return repo;
    }

    private async Task<string> ArtifactTextAsync(MetricStoreClient client, string runId, string path)
    {
        var bytes = new MemoryStream();
        await client.DownloadArtifactAsync(runId, path, bytes);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    [Fact]
    public async Task A_dirty_repository_gives_commit_branch_remote_without_credentials_and_the_diff()
    {
        using var temp = new TempDirectory();
        var repo = NewRepository(temp);
        File.WriteAllText(Path.Combine(repo, "train.py"), "lr = 0.03\n");
        File.WriteAllText(Path.Combine(repo, "notes-untracked.txt"), "scratch\n");
        File.WriteAllText(Path.Combine(repo, "environment.yml"), "name: sweep\ndependencies:\n  - python=3.11\n");
        using var client = ClientWith(new CaptureOptions { WorkingDirectory = repo });

        var inputs = new RunInputs { Seed = 1234, Datasets = new Dictionary<string, string> { ["train"] = "s3://corpus/v3@sha256:abc" } };
        await using var run = await client.StartRunAsync(Unique.Name("capture"), options: new RunStartOptions { Inputs = inputs });
        Assert.Empty(run.CaptureWarnings);
        var source = (await client.GetRunAsync(run.Id)).Source;
        Assert.Equal(Git(repo, "rev-parse", "HEAD"), source.GitCommit);
        Assert.Equal("exp/lr-sweep", source.GitBranch);
        Assert.Equal("https://git.example.com/team/models.git", source.GitRemote);
        Assert.True(source.GitDirty);
        Assert.NotEmpty(source.Host);
        Assert.NotEmpty(source.Runtime);

        var paths = (await client.ListArtifactsAsync(run.Id, "metricstore")).Select(a => a.Path).ToList();
        Assert.Equal(["metricstore/deps.json", "metricstore/environment.yml", "metricstore/git-status.txt", "metricstore/git.diff", "metricstore/packages.txt"], paths);
        var diff = await ArtifactTextAsync(client, run.Id, "metricstore/git.diff");
        Assert.Contains("-lr = 0.1", diff, StringComparison.Ordinal);
        Assert.Contains("+lr = 0.03", diff, StringComparison.Ordinal);
        Assert.Contains("?? notes-untracked.txt", await ArtifactTextAsync(client, run.Id, "metricstore/git-status.txt"), StringComparison.Ordinal);
        Assert.Contains("python=3.11", await ArtifactTextAsync(client, run.Id, "metricstore/environment.yml"), StringComparison.Ordinal);
        var packages = await ArtifactTextAsync(client, run.Id, "metricstore/packages.txt");
        Assert.Matches(@"(?m)^Grpc\.Net\.Client \d+\.\d+\.\d+", packages);

        var stored = await client.GetRunAsync(run.Id);
        Assert.Equal("1234", stored.Params[RunInputs.SeedParam]);
        Assert.Equal("s3://corpus/v3@sha256:abc", stored.Params["inputs/dataset/train"]);

        // The documented search over the inputs convention.
        var found = await client.Tracking.SearchRunsAsync(new SearchRunsRequest
        {
            Filter = "params.inputs/seed = '1234' and params.inputs/dataset/train LIKE 's3://corpus/v3%'",
            ExperimentNames = { stored.ExperimentName },
        });
        Assert.Equal([run.Id], found.Runs.Select(r => r.RunId));
    }

    [Fact]
    public async Task A_clean_repository_is_not_dirty_and_attaches_no_diff()
    {
        using var temp = new TempDirectory();
        var repo = NewRepository(temp);
        using var client = ClientWith(new CaptureOptions { WorkingDirectory = repo, Packages = false });
        await using var run = await client.StartRunAsync(Unique.Name("capture"));
        var source = (await client.GetRunAsync(run.Id)).Source;
        Assert.False(source.GitDirty);
        Assert.Equal(40, source.GitCommit.Length);
        Assert.Empty(await client.ListArtifactsAsync(run.Id));
        Assert.Empty(run.CaptureWarnings);
    }

    [Fact]
    public async Task Outside_a_repository_or_without_git_the_run_starts_and_says_what_was_missed()
    {
        using var temp = new TempDirectory();
        using (var noRepo = ClientWith(new CaptureOptions { WorkingDirectory = temp.Path, Packages = false }))
        {
            await using var run = await noRepo.StartRunAsync(Unique.Name("capture"));
            Assert.Empty((await noRepo.GetRunAsync(run.Id)).Source.GitCommit);
            Assert.Empty(run.CaptureWarnings); // not being in a repository is normal
        }

        using var noGit = ClientWith(new CaptureOptions { WorkingDirectory = NewRepository(temp), GitExecutable = Path.Combine(temp.Path, "no-such-git"), Packages = false });
        await using var started = await noGit.StartRunAsync(Unique.Name("capture"));
        Assert.Contains(started.CaptureWarnings, w => w.Contains("no-such-git", StringComparison.Ordinal));
        var stored = await noGit.GetRunAsync(started.Id);
        Assert.Equal(RunStatus.Running, stored.Status);
        Assert.Contains("no-such-git", stored.Tags[ActiveRun.CaptureWarningsTag], StringComparison.Ordinal);
        Assert.NotEmpty(stored.Source.Host); // the other parts were still captured
    }

    [Fact]
    public async Task A_command_that_hangs_is_killed_after_the_timeout()
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("this test runs a shell script as a stand-in for git");
        }

        using var temp = new TempDirectory();
        var slow = Path.Combine(temp.Path, "slow-git");
        File.WriteAllText(slow, "#!/bin/sh\nsleep 30\n");
        File.SetUnixFileMode(slow, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var client = ClientWith(new CaptureOptions { WorkingDirectory = temp.Path, GitExecutable = slow, CommandTimeout = TimeSpan.FromMilliseconds(300), Packages = false });
        var clock = Stopwatch.StartNew();
        await using var run = await client.StartRunAsync(Unique.Name("capture"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"start took {clock.Elapsed}");
        Assert.Contains(run.CaptureWarnings, w => w.Contains("took longer than", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Capture_can_be_switched_off_part_by_part()
    {
        using var temp = new TempDirectory();
        var repo = NewRepository(temp);
        File.WriteAllText(Path.Combine(repo, "train.py"), "lr = 0.5\n");

        using var none = ClientWith(CaptureOptions.None);
        await using (var run = await none.StartRunAsync(Unique.Name("capture")))
        {
            var source = (await none.GetRunAsync(run.Id)).Source;
            Assert.Equal(new SourceInfo(), source);
            Assert.Empty(await none.ListArtifactsAsync(run.Id));
        }

        using var noDiff = ClientWith(new CaptureOptions { WorkingDirectory = repo, GitDiff = false, Packages = false });
        await using var withoutDiff = await noDiff.StartRunAsync(Unique.Name("capture"));
        Assert.True((await noDiff.GetRunAsync(withoutDiff.Id)).Source.GitDirty);
        Assert.Empty(await noDiff.ListArtifactsAsync(withoutDiff.Id));
    }

    [Theory]
    [InlineData("https://alice:tok@host.example/r.git", "https://host.example/r.git")]
    [InlineData("https://tok@host.example:8443/r.git", "https://host.example:8443/r.git")]
    [InlineData("git@github.com:org/repo.git", "git@github.com:org/repo.git")]
    [InlineData("ssh://git@host/repo.git", "ssh://host/repo.git")]
    [InlineData("/srv/git/repo.git", "/srv/git/repo.git")]
    public void Remote_urls_lose_their_credentials(string url, string expected) =>
        Assert.Equal(expected, SourceCapture.StripCredentials(url));
}
