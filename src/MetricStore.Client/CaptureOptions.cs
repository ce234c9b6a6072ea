namespace MetricStore.Client;

/// <summary>
/// What the client records about the process when it starts a run, so the run can be
/// reproduced. Each part can be switched off; a part that fails (no git, no repository, a
/// command that hangs) is skipped and never breaks the run (see <see cref="ActiveRun.CaptureWarnings"/>).
/// </summary>
public sealed record CaptureOptions
{
    /// <summary>Capture nothing.</summary>
    public static readonly CaptureOptions None = new() { Process = false, Git = false, GitDiff = false, Packages = false };

    /// <summary>Command line, host, OS, runtime and user, in the run's source.</summary>
    public bool Process { get; init; } = true;

    /// <summary>Git commit, branch, remote URL (credentials removed) and dirty flag, in the run's source.</summary>
    public bool Git { get; init; } = true;

    /// <summary>
    /// When the working tree is dirty: the uncommitted diff against HEAD as the artifact
    /// <c>metricstore/git.diff</c> and <c>git status</c> (which lists untracked files) as
    /// <c>metricstore/git-status.txt</c>.
    /// </summary>
    public bool GitDiff { get; init; } = true;

    /// <summary>
    /// The package list: the .NET dependencies of the entry application (its deps.json) as
    /// <c>metricstore/packages.txt</c> and <c>metricstore/deps.json</c>; <c>pip freeze</c> as
    /// <c>metricstore/pip-freeze.txt</c> when a Python virtualenv or conda environment is active;
    /// and a conda <c>environment.yml</c> found in the working directory or the repository root.
    /// </summary>
    public bool Packages { get; init; } = true;

    /// <summary>Where to look for the repository and environment files (default: the current directory).</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>The git executable (default: "git" on the PATH).</summary>
    public string GitExecutable { get; init; } = "git";

    /// <summary>The Python executable for pip freeze (default: the active environment's python, else "python3").</summary>
    public string? PythonExecutable { get; init; }

    /// <summary>How long one capture command (git, pip) may take before it is killed and skipped.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>A larger diff is not uploaded (a warning says so); the dirty flag is still set.</summary>
    public long MaxDiffBytes { get; init; } = 16L * 1024 * 1024;

    internal bool Any => Process || Git || GitDiff || Packages;
}

/// <summary>
/// The inputs that decide what a run computes besides its code, recorded as params under the
/// <c>inputs/</c> namespace so every run states them the same way and search can use them:
/// <c>inputs/seed</c> and <c>inputs/dataset/NAME</c> (e.g. <c>params.inputs/seed = '42'</c>,
/// <c>params.inputs/dataset/train LIKE 's3://corpus/v3%'</c>).
/// </summary>
public sealed record RunInputs
{
    public const string SeedParam = "inputs/seed";
    public const string DatasetParamPrefix = "inputs/dataset/";

    /// <summary>The random seed the job uses for everything it seeds.</summary>
    public long? Seed { get; init; }

    /// <summary>
    /// Dataset name → identifier that pins the exact data: a URI with a version or snapshot, a
    /// content hash, or a registry reference (e.g. "train" → "s3://corpus/v3@sha256:…").
    /// </summary>
    public IReadOnlyDictionary<string, string>? Datasets { get; init; }

    internal Dictionary<string, string> ToParams()
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Seed is { } seed)
        {
            result[SeedParam] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        foreach (var (name, id) in Datasets ?? new Dictionary<string, string>())
        {
            result[DatasetParamPrefix + name] = id;
        }

        return result;
    }
}
