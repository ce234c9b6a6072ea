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
}
