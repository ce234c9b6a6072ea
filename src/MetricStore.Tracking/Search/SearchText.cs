using System.Globalization;

namespace MetricStore.Tracking.Search;

/// <summary>Text semantics of run search, shared by SQLite (as functions) and the tests' reference evaluator.</summary>
public static class SearchText
{
    /// <summary>
    /// SQL LIKE, case-sensitive: % any run, _ one character, \ escapes the next character. Greedy
    /// matching that backtracks only to the last %, so the time is at most value × pattern length
    /// (no exponential blow-up on patterns like '%a%a%a…').
    /// </summary>
    public static bool Like(string value, string pattern)
    {
        // Pattern as (kind, char): 0 literal, 1 any one, 2 any run.
        var tokens = new List<(byte Kind, char C)>(pattern.Length);
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                tokens.Add((0, pattern[++i]));
            }
            else
            {
                tokens.Add((c switch { '%' => (byte)2, '_' => (byte)1, _ => (byte)0 }, c));
            }
        }

        int v = 0, t = 0, star = -1, starV = 0;
        while (v < value.Length)
        {
            if (t < tokens.Count && (tokens[t].Kind == 1 || (tokens[t].Kind == 0 && tokens[t].C == value[v])))
            {
                v++;
                t++;
            }
            else if (t < tokens.Count && tokens[t].Kind == 2)
            {
                star = t++;
                starV = v;
            }
            else if (star >= 0)
            {
                t = star + 1;
                v = ++starV;
            }
            else
            {
                return false;
            }
        }

        while (t < tokens.Count && tokens[t].Kind == 2)
        {
            t++;
        }

        return t == tokens.Count;
    }

    /// <summary>A param or tag value as a number, or null when it is not one (then numeric comparisons are unknown).</summary>
    public static double? Number(string? value) =>
        value is not null && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) ? number : null;

    /// <summary>
    /// A full-text query for SQLite FTS5 made safe from user text: every word is a quoted term (so
    /// FTS5 operators and punctuation in the text are plain characters), all words must appear, and
    /// a word ending in * matches as a prefix. Null when the text has no word.
    /// </summary>
    public static string? FullTextQuery(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var terms = new List<string>();
        foreach (var word in text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var prefix = word.Length > 1 && word.EndsWith('*');
            var bare = prefix ? word[..^1] : word;
            terms.Add("\"" + bare.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" + (prefix ? "*" : ""));
        }

        return string.Join(' ', terms);
    }
}
