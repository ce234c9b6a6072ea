using System.Globalization;
using System.Text;
using MetricStore.Core;

namespace MetricStore.Tracking.Search;

/// <summary>
/// Turns a filter's syntax tree and order keys into SQL over <c>runs r JOIN experiments e</c>. The
/// SQL text comes only from the tree's shape and fixed fragments; every key and value the user
/// wrote becomes a parameter ($p0, $p1, …). Missing params, tags or metrics are SQL NULL, so a
/// comparison with them is unknown and three-valued logic applies (docs/search.md).
/// </summary>
internal sealed class SearchCompiler
{
    private readonly StringBuilder _sql = new();
    private readonly List<object> _parameters = [];

    public static (string Where, string OrderBy, IReadOnlyList<object> Parameters) Compile(FilterNode? filter, IReadOnlyList<OrderKey> order)
    {
        var compiler = new SearchCompiler();
        if (filter is null)
        {
            compiler._sql.Append("1");
        }
        else
        {
            compiler.Node(filter, positive: true);
        }

        var where = compiler._sql.ToString();
        var orderBy = new StringBuilder();
        foreach (var key in order)
        {
            var expression = compiler.Expression(key.Field, numeric: key.Field.IsNumeric);
            orderBy.Append(CultureInfo.InvariantCulture, $"({expression}) IS NULL, {expression} {(key.Descending ? "DESC" : "ASC")}, ");
        }

        orderBy.Append("r.start_ms DESC, r.id DESC");
        return (where, orderBy.ToString(), compiler._parameters);
    }

    /// <summary>
    /// Compiles a node. <paramref name="positive"/> is true when no 'not' is above it: there a
    /// comparison on a param, tag or metric becomes a semi-join (<c>r.id IN (SELECT run_id …)</c>),
    /// which the (key, value) indexes answer without visiting every run. A semi-join says false
    /// where the scalar form says unknown; without a 'not' above, both exclude the run, so the
    /// results are the same (under a 'not' the scalar form keeps three-valued logic).
    /// </summary>
    private void Node(FilterNode node, bool positive)
    {
        if (positive && SemiJoin(node))
        {
            return;
        }

        switch (node)
        {
            case AndNode and:
                _sql.Append('(');
                Node(and.Left, positive);
                _sql.Append(" AND ");
                Node(and.Right, positive);
                _sql.Append(')');
                break;
            case OrNode or:
                _sql.Append('(');
                Node(or.Left, positive);
                _sql.Append(" OR ");
                Node(or.Right, positive);
                _sql.Append(')');
                break;
            case NotNode not:
                _sql.Append("(NOT ");
                Node(not.Inner, positive: false);
                _sql.Append(')');
                break;
            case IsNullNode isNull:
                _sql.Append('(').Append(Expression(isNull.Field, numeric: false)).Append(" IS NULL)");
                break;
            case InNode @in:
                var numeric = @in.Values.All(v => v.Number is not null) && (@in.Field.IsNumeric || @in.Field.Kind == FieldKind.Param);
                _sql.Append('(').Append(Expression(@in.Field, numeric)).Append(" IN (");
                for (var i = 0; i < @in.Values.Count; i++)
                {
                    _sql.Append(i == 0 ? "" : ", ").Append(Parameter(LiteralValue(@in.Field, @in.Values[i])));
                }

                _sql.Append("))");
                break;
            case CompareNode compare:
                if (compare.Op == "like")
                {
                    _sql.Append("ms_like(").Append(Expression(compare.Field, numeric: false)).Append(", ").Append(Parameter(compare.Value.Text!)).Append(')');
                    break;
                }

                var asNumber = compare.Value.Number is not null;
                var op = compare.Op == "!=" ? "<>" : compare.Op;
                _sql.Append('(').Append(Expression(compare.Field, asNumber)).Append(' ').Append(op).Append(' ')
                    .Append(Parameter(LiteralValue(compare.Field, compare.Value))).Append(')');
                break;
            default:
                throw new InvalidOperationException($"unknown filter node {node.GetType().Name}");
        }
    }

    /// <summary>A comparison or 'in' on a param, tag or metric as <c>r.id IN (SELECT run_id …)</c>; false when the node is something else.</summary>
    private bool SemiJoin(FilterNode node)
    {
        var (field, condition) = node switch
        {
            CompareNode { Field.Kind: not FieldKind.Attribute } c => (c.Field, (Func<string, string>)(value => c.Op == "like"
                ? $"ms_like({value}, {Parameter(c.Value.Text!)})"
                : $"{(c.Value.Number is not null && c.Field.Kind != FieldKind.Metric ? $"ms_number({value})" : value)} {(c.Op == "!=" ? "<>" : c.Op)} {Parameter(LiteralValue(c.Field, c.Value))}")),
            InNode { Field.Kind: not FieldKind.Attribute } i => (i.Field, value =>
            {
                var numeric = i.Values.All(v => v.Number is not null) && i.Field.Kind == FieldKind.Param;
                return $"{(numeric ? $"ms_number({value})" : value)} IN ({string.Join(", ", i.Values.Select(v => Parameter(LiteralValue(i.Field, v))))})";
            }
            ),
            _ => (null!, null!),
        };
        if (field is null)
        {
            return false;
        }

        var (table, keyColumn, valueColumn) = field.Kind switch
        {
            FieldKind.Param => ("params", "key", "value"),
            FieldKind.Tag => ("run_tags", "key", "value"),
            _ => ("run_metrics", "metric", MetricColumn(field.Aggregate)),
        };
        var key = Parameter(field.Name);
        _sql.Append(CultureInfo.InvariantCulture, $"r.id IN (SELECT run_id FROM {table} WHERE {keyColumn} = {key} AND {condition(valueColumn)})");
        return true;
    }

    private static string MetricColumn(string aggregate) => aggregate switch
    {
        "last" or "min" or "max" or "mean" or "count" or "last_step" => aggregate,
        _ => throw new InvalidOperationException($"unknown aggregate {aggregate}"),
    };

    /// <summary>The SQL expression of a field for the current run (NULL when the run has none).</summary>
    private string Expression(Field field, bool numeric)
    {
        switch (field.Kind)
        {
            case FieldKind.Attribute:
                return field.Name switch
                {
                    "run_id" => "r.id",
                    "name" => "r.name",
                    "status" => "(CASE r.status WHEN 1 THEN 'RUNNING' WHEN 2 THEN 'FINISHED' WHEN 3 THEN 'FAILED' WHEN 4 THEN 'KILLED' END)",
                    "start_time" => "r.start_ms",
                    "end_time" => "r.end_ms",
                    "experiment" => "e.name",
                    "user" => "r.user_name",
                    _ => throw new InvalidOperationException($"unknown attribute {field.Name}"),
                };
            case FieldKind.Param:
            case FieldKind.Tag:
                var table = field.Kind == FieldKind.Param ? "params" : "run_tags";
                var value = $"(SELECT value FROM {table} WHERE run_id = r.id AND key = {Parameter(field.Name)})";
                return numeric ? $"ms_number({value})" : value;
            default:
                var column = field.Aggregate switch
                {
                    "last" => "last",
                    "min" => "min",
                    "max" => "max",
                    "mean" => "mean",
                    "count" => "count",
                    "last_step" => "last_step",
                    _ => throw new InvalidOperationException($"unknown aggregate {field.Aggregate}"),
                };
                return $"(SELECT {column} FROM run_metrics WHERE run_id = r.id AND metric = {Parameter(field.Name)})";
        }
    }

    private static object LiteralValue(Field field, Literal literal)
    {
        if (literal.Number is { } number)
        {
            return number;
        }

        if (field is { Kind: FieldKind.Attribute, Name: "status" })
        {
            var text = literal.Text!.ToUpperInvariant();
            text = text.StartsWith("RUN_STATUS_", StringComparison.Ordinal) ? text["RUN_STATUS_".Length..] : text;
            return text is "RUNNING" or "FINISHED" or "FAILED" or "KILLED"
                ? text
                : throw new MetricStoreException(ErrorCode.InvalidArgument, $"filter: status '{literal.Text}' is not RUNNING, FINISHED, FAILED or KILLED");
        }

        return literal.Text!;
    }

    private string Parameter(object value)
    {
        _parameters.Add(value);
        return "$p" + (_parameters.Count - 1).ToString(CultureInfo.InvariantCulture);
    }
}
