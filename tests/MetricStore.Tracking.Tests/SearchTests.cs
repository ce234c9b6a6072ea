using CsCheck;
using MetricStore.Core;
using MetricStore.Tracking.Search;

namespace MetricStore.Tracking.Tests;

/// <summary>The run search language: parser, errors, fuzzing, and SQL results against a reference evaluator.</summary>
public sealed class SearchTests
{
    [Theory]
    [InlineData("metrics.val_acc > 0.9 and params.lr = '0.01'", "(metrics.val_acc.last > 0.9 and params.lr = '0.01')")]
    [InlineData("metrics.loss.min < 0.2", "metrics.loss.min < 0.2")]
    [InlineData("metrics.train/loss.last <= 1e-3", "metrics.train/loss.last <= 0.001")]
    [InlineData("tags.team IN ('nlp','cv')", "tags.team in ('nlp', 'cv')")]
    [InlineData("params.optimizer LIKE 'adam%'", "params.optimizer like 'adam%'")]
    [InlineData("tags.reviewed IS NULL", "tags.reviewed is null")]
    [InlineData("tags.reviewed is not null", "(not tags.reviewed is null)")]
    [InlineData("not (status = 'FAILED' or status = 'KILLED') and attributes.name != 'x'", "((not (status = 'FAILED' or status = 'KILLED')) and name != 'x')")]
    [InlineData("a_or_b", null)]
    [InlineData("params.`learning rate` = \"it's\"", "params.`learning rate` = 'it''s'")]
    [InlineData("start_time >= 1700000000000 and tags.x not in ('a')", "(start_time >= 1700000000000 and (not tags.x in ('a')))")]
    public void Filters_parse_into_the_expected_tree(string filter, string? expected)
    {
        if (expected is null)
        {
            Assert.Throws<MetricStoreException>(() => SearchParser.ParseFilter("filter", filter));
            return;
        }

        var tree = SearchParser.ParseFilter("filter", filter)!;
        Assert.Equal(expected, tree.ToString());
        Assert.Equal(expected, SearchParser.ParseFilter("filter", expected)!.ToString()); // printing round-trips
    }

    [Theory]
    [InlineData("params.lr = ", "filter: expected a value: a quoted string or a number; found the end of the filter at position 13")]
    [InlineData("status = 'RUNNING' and", "filter: expected a field such as status, params.lr, tags.team or metrics.loss; found the end of the filter at position 23")]
    [InlineData("colour = 'red'", "filter: unknown field 'colour'")]
    [InlineData("name = 'unclosed", "filter: the string starting with ' is not closed at position 8")]
    [InlineData("(status = 'FAILED'", "filter: expected ')'; found the end of the filter at position 19")]
    [InlineData("metrics.acc > 'high'", "filter: metrics.acc.last is a number; compare it with a number, not 'high'; found 'high' at position 15")]
    [InlineData("status = 'RUNNING' status", "filter: expected 'and', 'or' or the end of the filter; found 'status' at position 20")]
    [InlineData("name ~ 'x'", "filter: unexpected character '~' at position 6")]
    public void Syntax_errors_name_the_position_and_what_was_expected(string filter, string message)
    {
        var error = Assert.Throws<MetricStoreException>(() => SearchParser.ParseFilter("filter", filter));
        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.True(error.Message.StartsWith(message, StringComparison.Ordinal), error.Message);
    }

    [Fact]
    public void Random_input_never_crashes_the_parser()
    {
        var pieces = Gen.OneOf("params", "tags", "metrics", ".", "lr", "status", "'x'", "\"", "'", "`", "(", ")", ",", "=", "!=", "<", ">=", "<>", "and", "or", "not", "in", "like", "is", "null", "1", "-2.5e3", "1e", " ", "%", "~", "\\", "attributes", "name");
        Gen.Select(pieces.Array[0, 30], Gen.String[0, 20]).Sample(t =>
        {
            var text = string.Join(' ', t.Item1) + t.Item2;
            try
            {
                SearchParser.ParseFilter("filter", text);
                SearchParser.ParseOrderBy("order_by", [text]);
            }
            catch (MetricStoreException e) when (e.Code == ErrorCode.InvalidArgument)
            {
            }
        }, iter: 5000);
    }

    [Fact]
    public void Deep_nesting_is_refused_not_a_stack_overflow()
    {
        var deep = new string('(', 10_000) + "status = 'RUNNING'" + new string(')', 10_000);
        Assert.Throws<MetricStoreException>(() => SearchParser.ParseFilter("filter", deep));
        Assert.Throws<MetricStoreException>(() => SearchParser.ParseFilter("filter", string.Concat(Enumerable.Repeat("not ", 5_000)) + "status = 'RUNNING'"));
    }

    [Theory]
    [InlineData("adamw", "adam%", true)]
    [InlineData("Adam", "adam%", false)]
    [InlineData("a_b", "a\\_b", true)]
    [InlineData("axb", "a\\_b", false)]
    [InlineData("axb", "a_b", true)]
    [InlineData("", "%", true)]
    [InlineData("abc", "%b%c", true)]
    [InlineData("abcd", "%b%c", false)]
    public void Like_is_case_sensitive_with_escapes(string value, string pattern, bool expected) =>
        Assert.Equal(expected, SearchText.Like(value, pattern));

    [Fact]
    public void Like_stays_linear_on_adversarial_patterns()
    {
        var value = new string('a', 8_000);
        var pattern = string.Concat(Enumerable.Repeat("%a", 2_000)) + "b";
        Assert.False(SearchText.Like(value, pattern)); // exponential backtracking would never return
    }

    private static readonly Gen<FilterNode> s_leaf = Gen.OneOf<FilterNode>(
        Gen.Select(Gen.OneOf("=", "!=", "<", ">="), Gen.OneOf("0.01", "0.1", "abc", "1e-3")).Select(t => (FilterNode)new CompareNode(new Field(FieldKind.Param, "lr", ""), t.Item1, new Literal(t.Item2, null))),
        Gen.Select(Gen.OneOf("=", "<", ">"), Gen.OneOf(0.001, 0.01, 0.5)).Select(t => (FilterNode)new CompareNode(new Field(FieldKind.Param, "lr", ""), t.Item1, new Literal(null, t.Item2))),
        Gen.OneOf("nlp", "cv", "rl").Array[1, 3].Select(v => (FilterNode)new InNode(new Field(FieldKind.Tag, "team", ""), v.Select(x => new Literal(x, null)).ToList())),
        Gen.OneOf("adam%", "%sgd", "_dam", "%").Select(p => (FilterNode)new CompareNode(new Field(FieldKind.Param, "opt", ""), "like", new Literal(p, null))),
        Gen.OneOf(FieldKind.Param, FieldKind.Tag, FieldKind.Metric).Select(k => (FilterNode)new IsNullNode(new Field(k, k == FieldKind.Tag ? "reviewed" : k == FieldKind.Param ? "opt" : "acc", k == FieldKind.Metric ? "last" : ""))),
        Gen.Select(Gen.OneOf("last", "min", "max", "count"), Gen.OneOf(">", "<=", "!="), Gen.Double[0, 1]).Select(t => (FilterNode)new CompareNode(new Field(FieldKind.Metric, "acc", t.Item1), t.Item2, new Literal(null, Math.Round(t.Item3, 2)))),
        Gen.OneOf("RUNNING", "FINISHED", "failed", "RUN_STATUS_KILLED").Select(s => (FilterNode)new CompareNode(new Field(FieldKind.Attribute, "status", ""), "=", new Literal(s, null))),
        Gen.OneOf("run-1%", "run-2_", "%").Select(p => (FilterNode)new CompareNode(new Field(FieldKind.Attribute, "name", ""), "like", new Literal(p, null))));

    private static Gen<FilterNode> Tree(int depth) => depth == 0
        ? s_leaf
        : Gen.Frequency(
            (3, s_leaf),
            (2, Gen.Select(Tree(depth - 1), Tree(depth - 1)).Select(t => (FilterNode)new AndNode(t.Item1, t.Item2))),
            (2, Gen.Select(Tree(depth - 1), Tree(depth - 1)).Select(t => (FilterNode)new OrNode(t.Item1, t.Item2))),
            (1, Tree(depth - 1).Select(t => (FilterNode)new NotNode(t))));

    [Fact]
    public void Random_filters_find_the_same_runs_as_a_reference_evaluator_in_the_same_order()
    {
        using var h = new StoreHarness();
        var experiment = h.Store.CreateExperiment("search").Id;
        h.Store.CreateExperiment("other");
        var random = new Random(5);
        var runs = new List<(Run Run, Dictionary<string, double?> Metrics)>();
        var lrs = new[] { "0.01", "0.1", "1e-3", "abc", null };
        var opts = new[] { "adam", "adamw", "sgd", "Adam", null };
        var teams = new[] { "nlp", "cv", "rl", null };
        for (var i = 0; i < 40; i++)
        {
            var parameters = new Dictionary<string, string>();
            var tags = new Dictionary<string, string>();
            if (lrs[random.Next(lrs.Length)] is { } lr)
            {
                parameters["lr"] = lr;
            }

            if (opts[random.Next(opts.Length)] is { } opt)
            {
                parameters["opt"] = opt;
            }

            if (teams[random.Next(teams.Length)] is { } team)
            {
                tags["team"] = team;
            }

            if (random.Next(3) == 0)
            {
                tags["reviewed"] = "yes";
            }

            h.Clock.Advance(TimeSpan.FromMilliseconds(random.Next(0, 2))); // some runs start in the same millisecond
            var run = h.Store.CreateRun(new NewRun { ExperimentName = i % 10 == 9 ? "other" : "search", Name = $"run-{i}", Params = parameters, Tags = tags });
            var status = random.Next(4);
            if (status > 0)
            {
                run = h.Store.EndRun(run.Id, (RunStatus)(status + 1));
            }

            var metrics = new Dictionary<string, double?>();
            if (random.Next(4) > 0)
            {
                var last = random.Next(5) == 0 ? double.NaN : Math.Round(random.NextDouble(), 2);
                var min = Math.Round(random.NextDouble() / 2, 2);
                var count = random.Next(1, 100);
                h.Store.UpsertRunMetrics([new RunMetricSummary(run.Id, "acc", count, last, 10, min, min + 0.5, 0.5)]);
                metrics["last"] = double.IsNaN(last) ? null : last;
                metrics["min"] = min;
                metrics["max"] = min + 0.5;
                metrics["count"] = count;
            }

            runs.Add((run, metrics));
        }

        var inScope = runs.Where(r => r.Run.ExperimentName == "search").ToList();
        Gen.Select(Tree(3), Gen.Bool).Sample(t =>
        {
            var (tree, ordered) = t;
            var text = tree.ToString();
            var order = ordered ? new[] { "metrics.acc.last desc", "params.lr" } : [];
            var page = h.Store.SearchRuns(text, ["search"], order, pageSize: 1000);
            var expected = inScope.Where(r => Evaluate(tree, r.Run, r.Metrics) == true).Select(r => r.Run).ToList();
            expected = ordered
                ? [.. expected.OrderBy(r => Metric(inScope, r, "last") is null).ThenByDescending(r => Metric(inScope, r, "last")).ThenBy(r => r.Params.ContainsKey("lr") ? 0 : 1).ThenBy(r => r.Params.GetValueOrDefault("lr"), StringComparer.Ordinal).ThenByDescending(r => r.StartTimeMs).ThenByDescending(r => r.Id, StringComparer.Ordinal)]
                : [.. expected.OrderByDescending(r => r.StartTimeMs).ThenByDescending(r => r.Id, StringComparer.Ordinal)];
            Assert.Equal(expected.Select(r => r.Name), page.Items.Select(r => r.Name));
        }, iter: 300);

        // Paging walks the same order a page at a time, and a token only fits its own search.
        var all = h.Store.SearchRuns("", [], ["name"], 1000).Items.Select(r => r.Id).ToList();
        var walked = new List<string>();
        string? token = null;
        do
        {
            var page = h.Store.SearchRuns("", [], ["name"], 7, token);
            walked.AddRange(page.Items.Select(r => r.Id));
            token = page.NextPageToken;
        }
        while (token is not null);
        Assert.Equal(all, walked);
        var first = h.Store.SearchRuns("", [], ["name"], 7).NextPageToken;
        var misuse = Assert.Throws<MetricStoreException>(() => h.Store.SearchRuns("status = 'RUNNING'", [], ["name"], 7, first));
        Assert.Contains("another filter", misuse.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_experiments_and_statuses_are_refused_by_name()
    {
        using var h = new StoreHarness();
        var noExperiment = Assert.Throws<MetricStoreException>(() => h.Store.SearchRuns("", ["nope"], []));
        Assert.Equal((ErrorCode.NotFound, "experiment_names[0]: experiment 'nope' does not exist"), (noExperiment.Code, noExperiment.Message));
        var badStatus = Assert.Throws<MetricStoreException>(() => h.Store.SearchRuns("status = 'DONE'", [], []));
        Assert.Contains("status 'DONE' is not RUNNING, FINISHED, FAILED or KILLED", badStatus.Message, StringComparison.Ordinal);
        var badOrder = Assert.Throws<MetricStoreException>(() => h.Store.SearchRuns("", [], ["metrics.acc sideways"]));
        Assert.StartsWith("order_by[0]: expected 'asc', 'desc'", badOrder.Message, StringComparison.Ordinal);
    }

    private static double? Metric(List<(Run Run, Dictionary<string, double?> Metrics)> runs, Run run, string aggregate) =>
        runs.First(r => r.Run.Id == run.Id).Metrics.GetValueOrDefault(aggregate);

    /// <summary>The reference: three-valued logic over the model (null = unknown, as SQL does).</summary>
    private static bool? Evaluate(FilterNode node, Run run, Dictionary<string, double?> metrics)
    {
        switch (node)
        {
            case AndNode and:
                var (a, b) = (Evaluate(and.Left, run, metrics), Evaluate(and.Right, run, metrics));
                return a == false || b == false ? false : a is null || b is null ? null : true;
            case OrNode or:
                var (c, d) = (Evaluate(or.Left, run, metrics), Evaluate(or.Right, run, metrics));
                return c == true || d == true ? true : c is null || d is null ? null : false;
            case NotNode not:
                return Evaluate(not.Inner, run, metrics) is { } inner ? !inner : null;
            case IsNullNode isNull:
                return Value(isNull.Field, run, metrics) is null;
            case InNode @in:
                var v = Value(@in.Field, run, metrics);
                return v is null ? null : @in.Values.Any(x => Equals(v, Normalize(@in.Field, x)));
            case CompareNode compare:
                var value = Value(compare.Field, run, metrics);
                if (compare.Op == "like")
                {
                    return value is string s ? SearchText.Like(s, compare.Value.Text!) : null;
                }

                var literal = Normalize(compare.Field, compare.Value);
                if (literal is double number && value is string text)
                {
                    value = SearchText.Number(text);
                }

                if (value is null)
                {
                    return null;
                }

                var order = value is double x1 ? x1.CompareTo((double)literal) : string.CompareOrdinal((string)value, (string)literal);
                return compare.Op switch
                {
                    "=" => order == 0,
                    "!=" => order != 0,
                    "<" => order < 0,
                    "<=" => order <= 0,
                    ">" => order > 0,
                    _ => order >= 0,
                };
            default:
                throw new InvalidOperationException();
        }
    }

    private static object Normalize(Field field, Literal literal) =>
        literal.Number is { } n ? n
        : field.Name == "status" ? literal.Text!.ToUpperInvariant().Replace("RUN_STATUS_", "", StringComparison.Ordinal)
        : literal.Text!;

    private static object? Value(Field field, Run run, Dictionary<string, double?> metrics) => field.Kind switch
    {
        FieldKind.Param => run.Params.GetValueOrDefault(field.Name),
        FieldKind.Tag => run.Tags.GetValueOrDefault(field.Name),
        FieldKind.Metric => metrics.GetValueOrDefault(field.Aggregate),
        _ => field.Name switch
        {
            "status" => run.Status.ToString().ToUpperInvariant(),
            "name" => run.Name,
            _ => throw new InvalidOperationException(field.Name),
        },
    };
}

/// <summary>Full-text search over run notes and experiment names and descriptions (SQLite FTS5).</summary>
public sealed class FullTextSearchTests
{
    [Fact]
    public void Notes_are_found_by_words_prefixes_and_updates_and_user_text_is_never_fts_syntax()
    {
        using var h = new StoreHarness();
        h.Store.CreateExperiment("nlp", "Transformer ablations on WMT");
        h.Store.CreateExperiment("vision", "ResNet baselines");
        // Start times a second apart: "newest first" below is then defined (two runs created in the
        // same millisecond tie on start time and are ordered by id, whose low bits are random).
        var warmup = h.Store.CreateRun(new NewRun { ExperimentName = "nlp", StartTimeMs = 1_700_000_000_000, Note = new Note("Warmup stabilises the first 1k steps", "") });
        var lr = h.Store.CreateRun(new NewRun { ExperimentName = "nlp", StartTimeMs = 1_700_000_001_000, Note = new Note("A lower lr is stabler", "") });
        h.Store.CreateRun(new NewRun { ExperimentName = "vision" });

        string[] Find(string text) => [.. h.Store.SearchRuns("", [], [], text: text).Items.Select(r => r.Id)];
        Assert.Equal([warmup.Id], Find("warmup"));
        Assert.Equal([warmup.Id], Find("WARMUP first")); // any case, every word
        Assert.Empty(Find("warmup lower"));
        Assert.Equal([lr.Id, warmup.Id], Find("stab*")); // prefix; newest first
        Assert.Empty(Find("\"warmup OR lower\" NEAR( -"));  // FTS5 operators are plain text here: no error

        h.Store.SetNote(lr.Id, null, "Confirmed: divergence gone");
        Assert.Equal([lr.Id], Find("divergence"));
        Assert.Equal([lr.Id], h.Store.SearchRuns("params.lr is null", ["nlp"], [], text: "confirmed").Items.Select(r => r.Id));

        string[] Experiments(string text) => [.. h.Store.ListExperiments(text: text).Items.Select(e => e.Name)];
        Assert.Equal(["nlp"], Experiments("transformer"));
        Assert.Equal(["vision"], Experiments("resnet baseline*"));
        Assert.Equal(["nlp", "vision"], Experiments(""));
        var tooLong = Assert.Throws<MetricStoreException>(() => h.Store.SearchRuns("", [], [], text: new string('a', 1001)));
        Assert.Contains("text is 1001 characters long", tooLong.Message, StringComparison.Ordinal);
    }
}
