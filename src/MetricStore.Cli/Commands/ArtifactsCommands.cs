using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Grpc.Core;
using MetricStore.Protocol.V1;

namespace MetricStore.Cli.Commands;

/// <summary>metricstore artifacts put|get|ls.</summary>
internal static class ArtifactsCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("artifacts", "Upload, download and list a run's artifacts (verified by sha256).");
        command.Subcommands.Add(PutCommand(context));
        command.Subcommands.Add(GetCommand(context));
        command.Subcommands.Add(ListCommand(context));
        return command;
    }

    private static Command PutCommand(CliContext context)
    {
        var runId = new Argument<string>("RUN_ID");
        var local = new Argument<string>("LOCAL_PATH") { Description = "A file, or a directory to upload with everything under it" };
        var path = new Option<string?>("--path") { Description = "Artifact path of the file (default: its name), or prefix of the directory's files (default: none)" };
        var command = new Command("put", "Upload a file or a directory to a run.") { runId, local, path };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var source = parse.GetValue(local)!;
            using var client = context.Connect(parse);
            IReadOnlyList<ArtifactInfo> uploaded;
            if (Directory.Exists(source))
            {
                uploaded = await client.UploadDirectoryAsync(parse.GetValue(runId)!, source, parse.GetValue(path), cancellationToken);
            }
            else if (File.Exists(source))
            {
                uploaded = [await client.UploadFileAsync(parse.GetValue(runId)!, source, parse.GetValue(path), cancellationToken)];
            }
            else
            {
                throw new UsageException($"LOCAL_PATH '{source}' is neither a file nor a directory");
            }

            Write(context, parse, uploaded, localPaths: null);
            return 0;
        });
        return command;
    }

    private static Command GetCommand(CliContext context)
    {
        var runId = new Argument<string>("RUN_ID");
        var path = new Argument<string>("PATH") { Description = "An artifact, or a directory of artifacts" };
        var output = new Option<string?>("--out") { Description = "Where to write: a file for an artifact, a directory for a directory (default: its name in the current directory)" };
        var command = new Command("get", "Download an artifact or a directory of artifacts, verifying each sha256. Nothing is left behind on a mismatch.") { runId, path, output };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var run = parse.GetValue(runId)!;
            var artifactPath = parse.GetValue(path)!;
            using var client = context.Connect(parse);
            var name = artifactPath.TrimEnd('/');
            name = name[(name.LastIndexOf('/') + 1)..];
            var destination = parse.GetValue(output);
            try
            {
                var target = destination is null ? Path.GetFullPath(name)
                    : Directory.Exists(destination) ? Path.Combine(destination, name)
                    : destination;
                var info = await client.DownloadFileAsync(run, artifactPath, target, cancellationToken);
                Write(context, parse, [info], [Path.GetFullPath(target)]);
                return 0;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.NotFound && e.Status.Detail.Contains("has no artifact at path", StringComparison.Ordinal))
            {
                // Not one artifact: a directory of them, if anything is under it.
            }

            var files = await client.DownloadDirectoryAsync(run, artifactPath, destination ?? name, cancellationToken);
            if (files.Count == 0)
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"run '{run}' has no artifact at or under '{artifactPath}'"));
            }

            Write(context, parse, files.Select(f => f.Info).ToList(), files.Select(f => f.LocalFile).ToList());
            return 0;
        });
        return command;
    }

    private static Command ListCommand(CliContext context)
    {
        var runId = new Argument<string>("RUN_ID");
        var prefix = new Option<string?>("--prefix") { Description = "Only artifacts at or under this directory" };
        var command = new Command("ls", "List a run's artifacts: path, size, sha256.") { runId, prefix };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var client = context.Connect(parse);
            var infos = await client.ListArtifactsAsync(parse.GetValue(runId)!, parse.GetValue(prefix), cancellationToken);
            Write(context, parse, infos, localPaths: null);
            return 0;
        });
        return command;
    }

    private static void Write(CliContext context, ParseResult parse, IReadOnlyList<ArtifactInfo> infos, IReadOnlyList<string>? localPaths)
    {
        if (context.Json(parse))
        {
            var array = new JsonArray();
            for (var i = 0; i < infos.Count; i++)
            {
                var node = Output.ToJson(infos[i], JsonValue.Create(infos[i].Path));
                if (localPaths is not null)
                {
                    node["localPath"] = localPaths[i];
                }

                array.Add(node);
            }

            Output.WriteJson(context.Output, array);
            return;
        }

        string[] header = localPaths is null ? ["PATH", "SIZE", "SHA256", "CREATED"] : ["PATH", "SIZE", "SHA256", "WRITTEN TO"];
        Output.WriteTable(context.Output, header, infos.Select((info, i) => new[]
        {
            info.Path,
            info.Size.ToString("N0", CultureInfo.InvariantCulture),
            info.Sha256,
            localPaths is null ? Output.Time(info.CreatedTimeMs) : localPaths[i],
        }), maxCell: int.MaxValue); // paths and hashes are for copying: never cut
    }
}
