namespace MetricStore.Core;

/// <summary>
/// The rules for an artifact's path inside its run. The server never builds a file name from a
/// path (bytes are stored by sha256), so these rules are about meaning, not only safety: one
/// artifact has one spelling, and nothing can name a place outside its run when a client writes
/// the artifact back to disk.
/// </summary>
public static class ArtifactPath
{
    public const int MaxLength = 1024;

    /// <summary>
    /// Returns the canonical form of <paramref name="path"/>: '/'-separated, "." segments removed.
    /// Names are otherwise compared code point by code point, as git and POSIX file systems do (no
    /// Unicode normalisation: "é" precomposed and decomposed are two paths). Refuses (InvalidArgument naming <paramref name="field"/> and the value)
    /// an empty path, an absolute path or drive letter, a ".." segment, an empty segment ("a//b",
    /// a trailing '/'), a backslash, NUL or any control character, and more than
    /// <see cref="MaxLength"/> characters.
    /// </summary>
    public static string Normalize(string field, string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            MetricStoreException.InvalidArgument($"{field} is required: a path inside the run such as 'model/weights.bin' (got {Validate.Quote(path)})");
        }

        if (path.Length > MaxLength)
        {
            MetricStoreException.InvalidArgument($"{field} is {path.Length} characters long; the limit is {MaxLength} (value starts {Validate.Quote(path)})");
        }

        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            if (c == '\\')
            {
                MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} contains a backslash at position {i}; separate segments with '/'");
            }

            if (char.IsControl(c))
            {
                MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} contains control character U+{(int)c:X4} at position {i}");
            }

            if (char.IsSurrogate(c) && !(char.IsHighSurrogate(c) && i + 1 < path.Length && char.IsLowSurrogate(path[i + 1])) && !(char.IsLowSurrogate(c) && i > 0 && char.IsHighSurrogate(path[i - 1])))
            {
                MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} contains an unpaired surrogate at position {i}");
            }
        }

        if (path[0] == '/')
        {
            MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} is absolute; give a path relative to the run such as 'model/weights.bin'");
        }

        if (path.Length >= 2 && path[1] == ':' && char.IsAsciiLetter(path[0]))
        {
            MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} starts with a drive letter; give a path relative to the run");
        }

        var segments = path.Split('/');
        var kept = new List<string>(segments.Length);
        foreach (var segment in segments)
        {
            switch (segment)
            {
                case "":
                    MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} has an empty segment ('//' or a trailing '/'); name a file");
                    break;
                case "..":
                    MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} contains '..'; artifact paths cannot leave their run");
                    break;
                case ".":
                    continue;
                default:
                    kept.Add(segment);
                    break;
            }
        }

        if (kept.Count == 0)
        {
            MetricStoreException.InvalidArgument($"{field} {Validate.Quote(path)} names no file");
        }

        return string.Join('/', kept);
    }

    /// <summary>
    /// A listing prefix: empty for everything, otherwise a path (a trailing '/' is allowed)
    /// normalised like <see cref="Normalize"/>. A prefix matches the artifact at that path and
    /// everything under it as a directory: "model" matches "model/a.bin", not "model2".
    /// </summary>
    public static string NormalizePrefix(string field, string? prefix)
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return "";
        }

        return Normalize(field, prefix.EndsWith('/') && prefix.Length > 1 ? prefix[..^1] : prefix);
    }

    /// <summary>
    /// Whether <paramref name="sha256"/> is 64 lowercase hex characters (the form every API
    /// returns). Uppercase is accepted by <see cref="NormalizeSha256"/>.
    /// </summary>
    public static bool IsSha256(string? sha256)
    {
        if (sha256 is not { Length: 64 })
        {
            return false;
        }

        foreach (var c in sha256)
        {
            if (!char.IsAsciiHexDigitLower(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Lowercases a hex sha256, or refuses it (InvalidArgument naming the field).</summary>
    public static string NormalizeSha256(string field, string sha256)
    {
        var lower = sha256.ToLowerInvariant();
        if (!IsSha256(lower))
        {
            MetricStoreException.InvalidArgument($"{field} {Validate.Quote(sha256)} is not a sha256: give 64 hex characters");
        }

        return lower;
    }
}
