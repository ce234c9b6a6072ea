namespace MetricStore.Tracking.Search;

/// <summary>
/// Parses the run search language into a syntax tree (recursive descent; precedence not &gt; and &gt; or):
/// <code>
/// filter     := or
/// or         := and ("or" and)*
/// and        := not ("and" not)*
/// not        := "not" not | "(" or ")" | comparison
/// comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
///             | field ["not"] "like" string | field "is" ["not"] "null"
/// field      := attribute | "params." key | "tags." key | "metrics." key ["." aggregate]
/// </code>
/// Keywords are case-insensitive; keys with other characters than letters, digits, _ - / : are
/// backquoted (<c>params.`learning rate`</c>). Strings are '…' or "…" (a doubled quote escapes it).
/// A syntax error is INVALID_ARGUMENT naming the position and what was expected.
/// </summary>
public static class SearchParser
{
    public const int MaxFilterLength = 10_000;
    public const int MaxInValues = 1000;
    private const int MaxDepth = 64;

    /// <summary>The syntax tree of <paramref name="filter"/>, or null for an empty filter (every run).</summary>
    public static FilterNode? ParseFilter(string field, string? filter)
    {
        if (string.IsNullOrWhiteSpace(filter))
        {
            return null;
        }

        if (filter.Length > MaxFilterLength)
        {
            Core.MetricStoreException.InvalidArgument($"{field} is {filter.Length} characters long; the limit is {MaxFilterLength}");
        }

        var parser = new Parser(field, SearchLexer.Tokenize(field, filter));
        var node = parser.Or(0);
        parser.Expect(TokenKind.End, "'and', 'or' or the end of the filter");
        return node;
    }

    /// <summary>Order keys such as <c>metrics.val_acc desc</c> (ascending when no direction is given).</summary>
    public static IReadOnlyList<OrderKey> ParseOrderBy(string field, IReadOnlyList<string> keys)
    {
        var result = new List<OrderKey>(keys.Count);
        for (var i = 0; i < keys.Count; i++)
        {
            var name = $"{field}[{i}]";
            var parser = new Parser(name, SearchLexer.Tokenize(name, keys[i] ?? ""));
            var key = parser.Field();
            var descending = false;
            if (parser.TryKeyword("desc"))
            {
                descending = true;
            }
            else
            {
                parser.TryKeyword("asc");
            }

            parser.Expect(TokenKind.End, "'asc', 'desc' or the end of the key");
            result.Add(new OrderKey(key, descending));
        }

        return result;
    }

    private sealed class Parser(string field, List<Token> tokens)
    {
        private int _at;

        private Token Current => tokens[_at];

        public FilterNode Or(int depth)
        {
            var left = And(depth);
            while (TryKeyword("or"))
            {
                left = new OrNode(left, And(depth));
            }

            return left;
        }

        private FilterNode And(int depth)
        {
            var left = Not(depth);
            while (TryKeyword("and"))
            {
                left = new AndNode(left, Not(depth));
            }

            return left;
        }

        private FilterNode Not(int depth)
        {
            if (depth > MaxDepth)
            {
                throw Fail($"the filter nests deeper than {MaxDepth} levels");
            }

            if (TryKeyword("not"))
            {
                return new NotNode(Not(depth + 1));
            }

            if (Current.Kind == TokenKind.LeftParen)
            {
                _at++;
                var inner = Or(depth + 1);
                Expect(TokenKind.RightParen, "')'");
                return inner;
            }

            return Comparison();
        }

        private FilterNode Comparison()
        {
            var f = Field();
            if (TryKeyword("is"))
            {
                var negate = TryKeyword("not");
                ExpectKeyword("null");
                FilterNode isNull = new IsNullNode(f);
                return negate ? new NotNode(isNull) : isNull;
            }

            var not = TryKeyword("not");
            if (TryKeyword("in"))
            {
                Expect(TokenKind.LeftParen, "'(' after 'in'");
                var values = new List<Literal> { Value(f) };
                while (Current.Kind == TokenKind.Comma)
                {
                    _at++;
                    values.Add(Value(f));
                    if (values.Count > MaxInValues)
                    {
                        throw Fail($"an 'in' list has more than {MaxInValues} values");
                    }
                }

                Expect(TokenKind.RightParen, "',' or ')'");
                FilterNode @in = new InNode(f, values);
                return not ? new NotNode(@in) : @in;
            }

            if (TryKeyword("like"))
            {
                if (f.IsNumeric)
                {
                    throw Fail($"'like' compares text; {f} is a number");
                }

                var pattern = Value(f);
                if (pattern.Text is null)
                {
                    throw Fail("'like' needs a quoted pattern such as 'adam%'", _at - 1);
                }

                FilterNode like = new CompareNode(f, "like", pattern);
                return not ? new NotNode(like) : like;
            }

            if (not)
            {
                throw Fail("expected 'in' or 'like' after 'not'");
            }

            if (Current.Kind != TokenKind.Operator)
            {
                throw Fail("expected a comparison (=, !=, <, <=, >, >=, in, like, is null)");
            }

            var op = Current.Text;
            _at++;
            return new CompareNode(f, op, Value(f));
        }

        public Field Field()
        {
            if (Current.Kind != TokenKind.Identifier)
            {
                throw Fail("expected a field such as status, params.lr, tags.team or metrics.loss");
            }

            var head = Current.Text.ToLowerInvariant();
            var headAt = _at;
            _at++;
            switch (head)
            {
                case "params" or "param":
                    return new Field(FieldKind.Param, Key("a param key"), "");
                case "tags" or "tag":
                    return new Field(FieldKind.Tag, Key("a tag key"), "");
                case "metrics" or "metric":
                    var metric = Key("a metric name");
                    var aggregate = "last";
                    while (Current.Kind == TokenKind.Dot)
                    {
                        // metrics.train/loss.min: the last segment is an aggregate when it names one.
                        _at++;
                        var next = Current.Kind == TokenKind.Identifier ? Current.Text : throw Fail("expected a metric name or an aggregate after '.'");
                        _at++;
                        if (Search.Field.MetricAggregates.Contains(next.ToLowerInvariant()) && Current.Kind != TokenKind.Dot)
                        {
                            aggregate = next.ToLowerInvariant();
                        }
                        else
                        {
                            metric += "." + next;
                        }
                    }

                    return new Field(FieldKind.Metric, metric, aggregate);
                default:
                    if (head == "attributes" && Current.Kind == TokenKind.Dot)
                    {
                        _at++;
                        head = Current.Kind == TokenKind.Identifier ? Current.Text.ToLowerInvariant() : throw Fail("expected an attribute after 'attributes.'");
                        headAt = _at;
                        _at++;
                    }

                    if (!Search.Field.Attributes.Contains(head))
                    {
                        throw Fail($"unknown field '{tokens[headAt].Text}'; use one of {string.Join(", ", Search.Field.Attributes.Order())}, params.KEY, tags.KEY or metrics.NAME[.last|min|max|mean|count|last_step]", headAt);
                    }

                    return new Field(FieldKind.Attribute, head, "");
            }
        }

        private string Key(string what)
        {
            Expect(TokenKind.Dot, $"'.' and {what}");
            if (Current.Kind != TokenKind.Identifier)
            {
                throw Fail($"expected {what}");
            }

            return tokens[_at++].Text;
        }

        private Literal Value(Field f)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.String:
                    _at++;
                    if (f.IsNumeric)
                    {
                        throw Fail($"{f} is a number; compare it with a number, not '{token.Text}'", _at - 1);
                    }

                    return new Literal(token.Text, null);
                case TokenKind.Number:
                    _at++;
                    var number = double.Parse(token.Text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture);
                    return f.IsNumeric || f.Kind == FieldKind.Param
                        ? new Literal(null, number)
                        : throw Fail($"{f} is text; quote the value: '{token.Text}'", _at - 1);
                default:
                    throw Fail("expected a value: a quoted string or a number");
            }
        }

        public bool TryKeyword(string keyword)
        {
            if (Current.Kind == TokenKind.Identifier && string.Equals(Current.Text, keyword, StringComparison.OrdinalIgnoreCase))
            {
                _at++;
                return true;
            }

            return false;
        }

        private void ExpectKeyword(string keyword)
        {
            if (!TryKeyword(keyword))
            {
                throw Fail($"expected '{keyword}'");
            }
        }

        public void Expect(TokenKind kind, string what)
        {
            if (Current.Kind != kind)
            {
                throw Fail($"expected {what}");
            }

            _at++;
        }

        private Core.MetricStoreException Fail(string message, int? tokenIndex = null)
        {
            var token = tokens[tokenIndex ?? _at];
            var found = token.Kind == TokenKind.End ? "the end of the filter" : $"'{token.Text}'";
            return new Core.MetricStoreException(Core.ErrorCode.InvalidArgument, $"{field}: {message}; found {found} at position {token.Position}");
        }
    }
}
