using System.Globalization;
using System.Text;
using MetricStore.Core;

namespace MetricStore.Tracking.Search;

/// <summary>What a filter compares: a run attribute, a param, a tag, or a metric summary.</summary>
public enum FieldKind
{
    Attribute,
    Param,
    Tag,
    Metric,
}

/// <summary>A field of a filter or an order key, e.g. <c>status</c>, <c>params.lr</c>, <c>metrics.loss.min</c>.</summary>
/// <param name="Kind">What the field is.</param>
/// <param name="Name">The attribute name, param or tag key, or metric name.</param>
/// <param name="Aggregate">For metrics: last, min, max, mean, count or first_step/last_step; else empty.</param>
public sealed record Field(FieldKind Kind, string Name, string Aggregate)
{
    /// <summary>Run attributes that filters and order keys can use.</summary>
    public static readonly IReadOnlySet<string> Attributes = new HashSet<string>(StringComparer.Ordinal)
    {
        "run_id", "name", "status", "start_time", "end_time", "experiment", "user",
    };

    public static readonly IReadOnlySet<string> MetricAggregates = new HashSet<string>(StringComparer.Ordinal)
    {
        "last", "min", "max", "mean", "count", "last_step",
    };

    /// <summary>True for fields whose values are numbers (comparisons are numeric).</summary>
    public bool IsNumeric => Kind == FieldKind.Metric || (Kind == FieldKind.Attribute && Name is "start_time" or "end_time");

    public override string ToString() => Kind switch
    {
        FieldKind.Attribute => Name,
        FieldKind.Param => $"params.{Quote(Name)}",
        FieldKind.Tag => $"tags.{Quote(Name)}",
        _ => $"metrics.{Quote(Name)}.{Aggregate}",
    };

    private static string Quote(string key) => key.All(SearchLexer.IsKeyChar) ? key : "`" + key.Replace("`", "``", StringComparison.Ordinal) + "`";
}

/// <summary>A literal: text or a number.</summary>
public sealed record Literal(string? Text, double? Number)
{
    public override string ToString() => Text is not null
        ? "'" + Text.Replace("'", "''", StringComparison.Ordinal) + "'"
        : Number!.Value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>A node of a parsed filter.</summary>
public abstract record FilterNode;

public sealed record AndNode(FilterNode Left, FilterNode Right) : FilterNode
{
    public override string ToString() => $"({Left} and {Right})";
}

public sealed record OrNode(FilterNode Left, FilterNode Right) : FilterNode
{
    public override string ToString() => $"({Left} or {Right})";
}

public sealed record NotNode(FilterNode Inner) : FilterNode
{
    public override string ToString() => $"(not {Inner})";
}

/// <summary><c>field op value</c> with op one of = != &lt; &lt;= &gt; &gt;= like.</summary>
public sealed record CompareNode(Field Field, string Op, Literal Value) : FilterNode
{
    public override string ToString() => $"{Field} {Op} {Value}";
}

public sealed record InNode(Field Field, IReadOnlyList<Literal> Values) : FilterNode
{
    public override string ToString() => $"{Field} in ({string.Join(", ", Values)})";
}

/// <summary><c>field is null</c> (the run has no such param, tag or metric).</summary>
public sealed record IsNullNode(Field Field) : FilterNode
{
    public override string ToString() => $"{Field} is null";
}

/// <summary>One order key.</summary>
public sealed record OrderKey(Field Field, bool Descending)
{
    public override string ToString() => $"{Field} {(Descending ? "desc" : "asc")}";
}

internal enum TokenKind
{
    Identifier,
    String,
    Number,
    Operator,
    LeftParen,
    RightParen,
    Comma,
    Dot,
    End,
}

internal readonly record struct Token(TokenKind Kind, string Text, int Position);

/// <summary>Splits a filter into tokens; positions are 1-based character offsets, as error messages give them.</summary>
internal static class SearchLexer
{
    public static bool IsKeyChar(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '/' or ':';

    public static List<Token> Tokenize(string field, string text)
    {
        var tokens = new List<Token>();
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }

            var start = i;
            if (c is '\'' or '"' or '`')
            {
                var quote = c;
                var value = new StringBuilder();
                i++;
                while (true)
                {
                    if (i >= text.Length)
                    {
                        throw Error(field, start, $"the string starting with {quote} is not closed");
                    }

                    if (text[i] == quote)
                    {
                        if (i + 1 < text.Length && text[i + 1] == quote)
                        {
                            value.Append(quote);
                            i += 2;
                            continue;
                        }

                        i++;
                        break;
                    }

                    value.Append(text[i++]);
                }

                // A backquoted name is an identifier (a key with unusual characters), never a value.
                tokens.Add(new Token(quote == '`' ? TokenKind.Identifier : TokenKind.String, value.ToString(), start + 1));
                continue;
            }

            if (char.IsAsciiDigit(c) || (c is '-' or '+' or '.' && i + 1 < text.Length && (char.IsAsciiDigit(text[i + 1]) || text[i + 1] == '.') && !LastIsDot(tokens)))
            {
                i++;
                while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] is '.' or 'e' or 'E' || (text[i] is '-' or '+' && text[i - 1] is 'e' or 'E')))
                {
                    i++;
                }

                var number = text[start..i];
                if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                {
                    throw Error(field, start, $"'{number}' is not a number");
                }

                tokens.Add(new Token(TokenKind.Number, number, start + 1));
                continue;
            }

            if (char.IsAsciiLetter(c) || c == '_')
            {
                while (i < text.Length && IsKeyChar(text[i]))
                {
                    i++;
                }

                tokens.Add(new Token(TokenKind.Identifier, text[start..i], start + 1));
                continue;
            }

            switch (c)
            {
                case '(':
                    tokens.Add(new Token(TokenKind.LeftParen, "(", start + 1));
                    i++;
                    continue;
                case ')':
                    tokens.Add(new Token(TokenKind.RightParen, ")", start + 1));
                    i++;
                    continue;
                case ',':
                    tokens.Add(new Token(TokenKind.Comma, ",", start + 1));
                    i++;
                    continue;
                case '.':
                    tokens.Add(new Token(TokenKind.Dot, ".", start + 1));
                    i++;
                    continue;
                case '=':
                    tokens.Add(new Token(TokenKind.Operator, "=", start + 1));
                    i += i + 1 < text.Length && text[i + 1] == '=' ? 2 : 1;
                    continue;
                case '!' when i + 1 < text.Length && text[i + 1] == '=':
                    tokens.Add(new Token(TokenKind.Operator, "!=", start + 1));
                    i += 2;
                    continue;
                case '<' or '>':
                    var op = i + 1 < text.Length && text[i + 1] == '=' ? c + "=" : i + 1 < text.Length && c == '<' && text[i + 1] == '>' ? "!=" : c.ToString();
                    tokens.Add(new Token(TokenKind.Operator, op, start + 1));
                    i += op.Length == 1 ? 1 : 2;
                    continue;
                default:
                    throw Error(field, start, $"unexpected character '{c}'");
            }
        }

        tokens.Add(new Token(TokenKind.End, "", text.Length + 1));
        return tokens;
    }

    private static bool LastIsDot(List<Token> tokens) => tokens.Count > 0 && tokens[^1].Kind == TokenKind.Dot;

    public static MetricStoreException Error(string field, int zeroBasedPosition, string message) =>
        new(ErrorCode.InvalidArgument, $"{field}: {message} at position {zeroBasedPosition + 1}");
}
