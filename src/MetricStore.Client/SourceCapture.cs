using System.ComponentModel;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using MetricStore.Protocol.V1;

namespace MetricStore.Client;

/// <summary>What <see cref="SourceCapture"/> found: the run's source, files to attach, and what failed.</summary>
internal sealed record CaptureResult(SourceInfo Source, IReadOnlyList<(string Path, byte[] Bytes)> Artifacts, IReadOnlyList<string> Warnings);

/// <summary>
/// Records the process that starts a run (see <see cref="CaptureOptions"/>). Never throws: a part
/// that cannot be read is left empty and described in the warnings.
/// </summary>
internal static class SourceCapture
{
    public const string ArtifactPrefix = "metricstore/";

    public static async Task<CaptureResult> CaptureAsync(CaptureOptions options, CancellationToken cancellationToken)
    {
        var source = new SourceInfo();
        var artifacts = new List<(string, byte[])>();
        var warnings = new List<string>();
        var directory = options.WorkingDirectory ?? Environment.CurrentDirectory;

        if (options.Process)
        {
            source.CommandLine = Try(() => string.Join(' ', Environment.GetCommandLineArgs()));
            source.Host = Try(() => Environment.MachineName);
            source.Os = Try(() => RuntimeInformation.OSDescription);
            source.Runtime = Try(() => RuntimeInformation.FrameworkDescription);
            source.User = Try(() => Environment.UserName);
        }

        string? repositoryRoot = null;
        if (options.Git || options.GitDiff)
        {
            repositoryRoot = await CaptureGitAsync(options, directory, source, artifacts, warnings, cancellationToken);
        }

        if (options.Packages)
        {
            await CapturePackagesAsync(options, directory, repositoryRoot, artifacts, warnings, cancellationToken);
        }

        return new CaptureResult(source, artifacts, warnings);
    }

    private static async Task<string?> CaptureGitAsync(
        CaptureOptions options, string directory, SourceInfo source, List<(string, byte[])> artifacts, List<string> warnings, CancellationToken cancellationToken)
    {
        var git = (string[] args, long maxBytes) => RunAsync(options.GitExecutable, ["-C", directory, .. args], options.CommandTimeout, maxBytes, cancellationToken);
        var root = await git(["rev-parse", "--show-toplevel"], 1 << 16);
        if (root.Failure is { } failure)
        {
            // Not a repository (the common case outside one) is not worth a warning; a missing git is.
            if (root.NotFound || root.TimedOut)
            {
                warnings.Add($"git: {failure}");
            }

            return null;
        }

        var status = await git(["status", "--porcelain=v1", "--untracked-files=all"], 16L << 20);
        var dirty = status.Failure is null && status.Output.Length > 0;
        if (options.Git)
        {
            var commit = await git(["rev-parse", "--verify", "-q", "HEAD"], 1 << 10);
            source.GitCommit = commit.Failure is null ? commit.Text : ""; // empty in a repository without commits
            var branch = await git(["symbolic-ref", "-q", "--short", "HEAD"], 1 << 12);
            source.GitBranch = branch.Failure is null ? branch.Text : ""; // detached HEAD: no branch
            source.GitRemote = await RemoteAsync(git);
            source.GitDirty = dirty;
            if (status.Failure is { } statusFailure)
            {
                warnings.Add($"git status: {statusFailure}");
            }
        }

        if (options.GitDiff && dirty)
        {
            artifacts.Add((ArtifactPrefix + "git-status.txt", status.Output));
            var diff = await git(["diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"], options.MaxDiffBytes);
            if (diff.Failure is { } diffFailure)
            {
                warnings.Add($"git diff: {diffFailure}");
            }
            else if (diff.Output.Length > 0)
            {
                artifacts.Add((ArtifactPrefix + "git.diff", diff.Output));
            }
        }

        return root.Text;
    }

    private static async Task<string> RemoteAsync(Func<string[], long, Task<CommandResult>> git)
    {
        var origin = await git(["remote", "get-url", "origin"], 1 << 14);
        if (origin.Failure is null)
        {
            return StripCredentials(origin.Text);
        }

        var remotes = await git(["remote"], 1 << 14);
        var first = remotes.Failure is null ? remotes.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() : null;
        if (first is null)
        {
            return "";
        }

        var url = await git(["remote", "get-url", first], 1 << 14);
        return url.Failure is null ? StripCredentials(url.Text) : "";
    }

    /// <summary>"https://user:token@host/repo" → "https://host/repo"; scp-like "git@host:repo" is kept (no secret in it).</summary>
    internal static string StripCredentials(string url)
    {
        if (url.Contains("://", StringComparison.Ordinal) && Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.UserInfo.Length > 0)
        {
            var builder = new UriBuilder(uri) { UserName = "", Password = "" };
            return builder.Uri.GetComponents(UriComponents.AbsoluteUri, UriFormat.UriEscaped);
        }

        return url;
    }

    private static async Task CapturePackagesAsync(
        CaptureOptions options, string directory, string? repositoryRoot, List<(string, byte[])> artifacts, List<string> warnings, CancellationToken cancellationToken)
    {
        // .NET: the entry application's deps.json names every package and version it loads.
        try
        {
            if (FindDepsJson() is { } deps)
            {
                var bytes = await File.ReadAllBytesAsync(deps, cancellationToken);
                artifacts.Add((ArtifactPrefix + "deps.json", bytes));
                artifacts.Add((ArtifactPrefix + "packages.txt", Encoding.UTF8.GetBytes(PackageList(bytes))));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            warnings.Add($"deps.json: {e.Message}");
        }

        // Python: pip freeze of the active virtualenv or conda environment, when there is one.
        var virtualEnv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        var conda = Environment.GetEnvironmentVariable("CONDA_PREFIX");
        var environmentRoot = !string.IsNullOrEmpty(virtualEnv) ? virtualEnv : conda;
        if (!string.IsNullOrEmpty(environmentRoot) || options.PythonExecutable is not null)
        {
            var python = options.PythonExecutable ?? PythonIn(environmentRoot!) ?? "python3";
            var freeze = await RunAsync(python, ["-m", "pip", "freeze", "--all"], options.CommandTimeout, 16L << 20, cancellationToken);
            if (freeze.Failure is { } failure)
            {
                warnings.Add($"pip freeze: {failure}");
            }
            else
            {
                artifacts.Add((ArtifactPrefix + "pip-freeze.txt", freeze.Output));
            }
        }

        // Conda: an environment file kept with the code.
        foreach (var folder in new[] { directory, repositoryRoot }.Where(d => d is not null).Distinct(StringComparer.Ordinal))
        {
            var file = new[] { "environment.yml", "environment.yaml" }.Select(name => Path.Combine(folder!, name)).FirstOrDefault(File.Exists);
            if (file is not null)
            {
                try
                {
                    artifacts.Add((ArtifactPrefix + "environment.yml", await File.ReadAllBytesAsync(file, cancellationToken)));
                    break;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    warnings.Add($"{file}: {e.Message}");
                }
            }
        }
    }

    private static string? FindDepsJson()
    {
        // The host lists the deps files it loaded; the first is the application's own.
        if (AppContext.GetData("APP_CONTEXT_DEPS_FILES") is string files)
        {
            var first = files.Split(';', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists);
            if (first is not null)
            {
                return first;
            }
        }

        var entry = System.Reflection.Assembly.GetEntryAssembly()?.GetName().Name;
        var candidate = entry is null ? null : Path.Combine(AppContext.BaseDirectory, entry + ".deps.json");
        return candidate is not null && File.Exists(candidate) ? candidate : null;
    }

    /// <summary>"Name Version" per package of a deps.json, sorted; projects and the framework are left out.</summary>
    internal static string PackageList(byte[] depsJson)
    {
        using var document = JsonDocument.Parse(depsJson);
        var lines = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        if (document.RootElement.TryGetProperty("libraries", out var libraries))
        {
            foreach (var library in libraries.EnumerateObject())
            {
                if (library.Value.TryGetProperty("type", out var type) && type.GetString() == "package")
                {
                    var slash = library.Name.IndexOf('/', StringComparison.Ordinal);
                    lines.Add(slash < 0 ? library.Name : library.Name[..slash] + " " + library.Name[(slash + 1)..]);
                }
            }
        }

        var text = new StringBuilder();
        foreach (var line in lines)
        {
            text.Append(line).Append('\n');
        }

        return text.ToString();
    }

    private static string? PythonIn(string environmentRoot)
    {
        foreach (var candidate in new[] { Path.Combine(environmentRoot, "bin", "python"), Path.Combine(environmentRoot, "Scripts", "python.exe"), Path.Combine(environmentRoot, "python.exe") })
        {
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private sealed record CommandResult(byte[] Output, string? Failure, bool NotFound = false, bool TimedOut = false)
    {
        public string Text => Encoding.UTF8.GetString(Output).Trim();
    }

    /// <summary>Runs a command with a timeout and an output cap; any failure is a description, never an exception.</summary>
    private static async Task<CommandResult> RunAsync(string fileName, string[] arguments, TimeSpan timeout, long maxOutputBytes, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            CreateNoWindow = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // Never prompt for credentials, and never take the index lock the training code's own git calls might need.
        start.Environment["GIT_TERMINAL_PROMPT"] = "0";
        start.Environment["GIT_OPTIONAL_LOCKS"] = "0";
        start.Environment["LC_ALL"] = "C";

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new Win32Exception($"could not start {fileName}");
        }
        catch (Win32Exception e)
        {
            return new CommandResult([], $"cannot run '{fileName}': {e.Message}", NotFound: true);
        }

        using (process)
        {
            process.StandardInput.Close();
            using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timer.CancelAfter(timeout);
            var errorTask = process.StandardError.ReadToEndAsync(timer.Token);
            try
            {
                var output = await ReadCappedAsync(process.StandardOutput.BaseStream, maxOutputBytes, timer.Token);
                if (output is null)
                {
                    Kill(process);
                    return new CommandResult([], $"'{fileName} {string.Join(' ', arguments)}' wrote more than {maxOutputBytes} bytes; skipped");
                }

                await process.WaitForExitAsync(timer.Token);
                var error = await errorTask;

                return process.ExitCode == 0
                    ? new CommandResult(output, null)
                    : new CommandResult(output, $"'{fileName} {string.Join(' ', arguments)}' exited with {process.ExitCode}: {error.Trim()}");
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                Kill(process);
                return new CommandResult([], $"'{fileName} {string.Join(' ', arguments)}' took longer than {timeout.TotalSeconds:0.#} s; skipped", TimedOut: true);
            }
        }
    }

    private static async Task<byte[]?> ReadCappedAsync(Stream stream, long maxBytes, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception)
        {
            // Already gone.
        }
    }

    private static string Try(Func<string> read)
    {
        try
        {
            return read() ?? "";
        }
        catch (Exception e) when (e is InvalidOperationException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
