using MetricStore.Storage.Segments;

namespace MetricStore.Storage.Tests;

/// <summary>
/// The compaction merge against a brute-force reference: random files of one series, each split
/// into row groups, overlapping or disjoint, with re-logged steps; every merged point must be the
/// newest file's, in step order, once; and the merge may hold only one row group per file: it reads
/// into columns it is done with, so the columns it ever needs are at most one set per file.
/// </summary>
public sealed class StreamingMergeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    public async Task Merging_random_files_equals_last_write_wins_by_brute_force(int seed)
    {
        var random = new Random(seed);
        var fileCount = random.Next(1, 7);
        var files = new List<SortedDictionary<long, double>>();
        var start = 0L;
        for (var f = 0; f < fileCount; f++)
        {
            // Mostly later steps (training goes on), sometimes back over earlier ones (a resume).
            var file = new SortedDictionary<long, double>();
            var from = random.Next(3) == 0 ? random.Next(0, (int)Math.Max(1, start)) : start;
            var n = random.Next(1, 400);
            var stride = random.Next(1, 4);
            for (var i = 0; i < n; i++)
            {
                if (random.Next(10) > 0)
                {
                    file[from + (i * stride)] = (f * 1000) + i + (random.NextDouble() / 2);
                }
            }

            if (file.Count == 0)
            {
                file[from] = f;
            }

            files.Add(file);
            start = Math.Max(start, file.Keys.Max() + 1);
        }

        var reference = new SortedDictionary<long, double>();
        foreach (var file in files)
        {
            foreach (var (step, value) in file)
            {
                reference[step] = value; // newest file wins
            }
        }

        var allocated = 0;
        var inputs = files.Select(file =>
        {
            var groupRows = random.Next(1, 64);
            var points = file.ToArray();
            var parts = new List<SegmentSeries>();
            var groups = new Dictionary<SegmentSeries, SeriesColumns>();
            for (var offset = 0; offset < points.Length; offset += groupRows)
            {
                var n = Math.Min(groupRows, points.Length - offset);
                var columns = new SeriesColumns(n) { Count = n };
                for (var i = 0; i < n; i++)
                {
                    columns.Steps[i] = points[offset + i].Key;
                    columns.Values[i] = points[offset + i].Value;
                    columns.Timestamps[i] = points[offset + i].Key * 10;
                }

                var part = new SegmentSeries { SeriesId = 1, RowGroup = parts.Count, Rows = n, MinStep = columns.Steps[0], MaxStep = columns.Steps[n - 1] };
                parts.Add(part);
                groups[part] = columns;
            }

            // Load as compaction does: into the free columns offered, or new ones (always room for 64).
            return new StreamingMerge.Input(parts, async (part, spare) =>
            {
                await Task.Yield();
                var source = groups[part];
                var into = spare ?? new SeriesColumns(64);
                allocated += spare is null ? 1 : 0;
                Array.Copy(source.Steps, into.Steps, source.Count);
                Array.Copy(source.Values, into.Values, source.Count);
                Array.Copy(source.Timestamps, into.Timestamps, source.Count);
                into.Count = source.Count;
                return into;
            });
        }).ToList();

        var bufferRows = random.Next(1, 100);
        var steps = new List<long>();
        var values = new List<double>();
        var timestamps = new List<long>();
        var emitted = await StreamingMerge.MergeAsync(inputs, bufferRows, buffer =>
        {
            Assert.InRange(buffer.Count, 1, bufferRows);
            steps.AddRange(buffer.Steps.Take(buffer.Count));
            values.AddRange(buffer.Values.Take(buffer.Count));
            timestamps.AddRange(buffer.Timestamps.Take(buffer.Count));
            return Task.CompletedTask;
        });

        Assert.Equal(reference.Count, emitted);
        Assert.Equal(reference.Keys, steps);
        Assert.Equal(reference.Values, values);
        Assert.Equal(steps.Select(s => s * 10), timestamps);

        // Never more row groups in memory than files: a used-up one is reused, not reallocated.
        Assert.InRange(allocated, 1, files.Count);
    }

    [Fact]
    public async Task Disjoint_files_are_merged_one_row_group_at_a_time()
    {
        // Three files of ten row groups each, in step order: each row group must be loaded only when
        // the merge reaches it and be done before the next one loads, so one set of columns serves all.
        var allocated = 0;
        var inputs = Enumerable.Range(0, 3).Select(f =>
        {
            var parts = Enumerable.Range(0, 10).Select(g => new SegmentSeries { SeriesId = 1, RowGroup = g, Rows = 100, MinStep = (f * 1000) + (g * 100), MaxStep = (f * 1000) + (g * 100) + 99 }).ToList();
            return new StreamingMerge.Input(parts, async (part, spare) =>
            {
                await Task.Yield();
                allocated += spare is null ? 1 : 0;
                var columns = spare ?? new SeriesColumns(100);
                columns.Count = 100;
                for (var i = 0; i < 100; i++)
                {
                    columns.Steps[i] = part.MinStep + i;
                    columns.Values[i] = part.MinStep + i;
                }

                return columns;
            });
        }).ToList();

        var next = 0L;
        var emitted = await StreamingMerge.MergeAsync(inputs, 250, buffer =>
        {
            for (var i = 0; i < buffer.Count; i++)
            {
                Assert.Equal(next++, buffer.Steps[i]);
            }

            return Task.CompletedTask;
        });

        Assert.Equal(3000, emitted);
        Assert.Equal(1, allocated); // thirty row groups, one set of columns
    }
}
