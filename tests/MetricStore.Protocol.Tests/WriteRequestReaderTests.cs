using System.Buffers;
using CsCheck;
using Google.Protobuf;
using MetricStore.Protocol.V1;

namespace MetricStore.Protocol.Tests;

/// <summary>The hand-written WriteRequest parser against the generated protobuf code (the reference).</summary>
public sealed class WriteRequestReaderTests
{
    private static readonly Gen<SeriesBatch> s_batch =
        Gen.Select(Gen.Long.Array[0, 40], Gen.Bool, Gen.Double.Array[0, 40], Gen.Float.Array[0, 40], Gen.Long.Array[0, 3], Gen.String[0, 12], Gen.Int[0, 3])
            .Select(t =>
            {
                var (steps, useFloats, doubles, floats, timestamps, metric, labels) = t;
                var batch = new SeriesBatch { Key = new SeriesKey { RunId = "0123456789abcdef0123456789abcdef", Metric = metric } };
                for (var i = 0; i < labels; i++)
                {
                    batch.Key.Labels[$"k{i}"] = $"v{i}-{metric}";
                }

                batch.Steps.AddRange(steps);
                if (useFloats)
                {
                    batch.ValuesF32.AddRange(floats);
                }
                else
                {
                    batch.Values.AddRange(doubles);
                }

                batch.TimestampsMs.AddRange(timestamps);
                return batch;
            });

    private static readonly Gen<WriteRequest> s_request =
        Gen.Select(Gen.String[0, 20], Gen.ULong, s_batch.Array[0, 5]).Select(t =>
        {
            var request = new WriteRequest { WriterId = t.Item1, Seq = t.Item2 };
            request.Batches.AddRange(t.Item3);
            return request;
        });

    private static void AssertSame(WriteRequest expected, PooledWriteRequest actual)
    {
        Assert.Equal(expected.WriterId, actual.WriterId);
        Assert.Equal(expected.Seq, actual.Seq);
        Assert.Equal(expected.Batches.Count, actual.Batches.Count);
        for (var i = 0; i < expected.Batches.Count; i++)
        {
            var e = expected.Batches[i];
            var a = actual.Batches[i];
            Assert.Equal(e.Key is not null, a.HasKey);
            var key = WriteRequestReader.ParseKey(actual.KeyBytes(a));
            Assert.Equal(e.Key?.RunId ?? "", key.RunId);
            Assert.Equal(e.Key?.Metric ?? "", key.Metric);
            Assert.Equal((e.Key?.Labels ?? []).OrderBy(l => l.Key), key.Labels.OrderBy(l => l.Key));
            Assert.Equal(e.Steps, a.Steps.Array.AsSpan(0, a.Steps.Count).ToArray());
            Assert.Equal(e.Values.Select(BitConverter.DoubleToInt64Bits), a.Values.Array.AsSpan(0, a.Values.Count).ToArray().Select(BitConverter.DoubleToInt64Bits));
            Assert.Equal(e.ValuesF32.Select(BitConverter.SingleToInt32Bits), a.ValuesF32.Array.AsSpan(0, a.ValuesF32.Count).ToArray().Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(e.TimestampsMs, a.Timestamps.Array.AsSpan(0, a.Timestamps.Count).ToArray());
        }
    }

    [Fact]
    public void Random_requests_decode_exactly_as_the_generated_parser_reads_them() =>
        s_request.Sample(request =>
        {
            var decoded = WriteRequestReader.Read(request.ToByteArray());
            AssertSame(WriteRequest.Parser.ParseFrom(request.ToByteArray()), decoded);
            decoded.Return();
        }, iter: 500);

    [Fact]
    public void A_payload_split_into_many_segments_decodes_the_same() =>
        Gen.Select(s_request, Gen.Int[1, 64]).Sample((request, segmentSize) =>
        {
            var bytes = request.ToByteArray();
            var decoded = WriteRequestReader.Read(Segments(bytes, segmentSize));
            AssertSame(request, decoded);
            decoded.Return();
        }, iter: 200);

    [Fact]
    public void Unpacked_repeated_fields_and_unknown_fields_are_read_as_protobuf_requires()
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        output.WriteTag(1, WireFormat.WireType.LengthDelimited);
        output.WriteString("writer-1");
        output.WriteTag(99, WireFormat.WireType.Varint); // unknown field
        output.WriteUInt64(12345);
        output.WriteTag(2, WireFormat.WireType.Varint);
        output.WriteUInt64(7);

        var batch = new MemoryStream();
        var b = new CodedOutputStream(batch);
        b.WriteTag(1, WireFormat.WireType.LengthDelimited);
        b.WriteBytes(new SeriesKey { RunId = "r", Metric = "m" }.ToByteString());
        foreach (var step in new long[] { 5, -1, long.MaxValue })
        {
            b.WriteTag(2, WireFormat.WireType.Varint); // unpacked
            b.WriteInt64(step);
        }

        foreach (var value in new[] { 1.5, double.NaN, -0.0 })
        {
            b.WriteTag(3, WireFormat.WireType.Fixed64); // unpacked
            b.WriteDouble(value);
        }

        b.WriteTag(42, WireFormat.WireType.LengthDelimited); // unknown, inside the batch
        b.WriteString("ignore me");
        b.WriteTag(5, WireFormat.WireType.Varint);
        b.WriteInt64(1_700_000_000_000);
        b.Flush();
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(batch.ToArray()));
        output.Flush();

        var bytes = stream.ToArray();
        var reference = WriteRequest.Parser.ParseFrom(bytes);
        var decoded = WriteRequestReader.Read(bytes);
        AssertSame(reference, decoded);
        Assert.Equal(new long[] { 5, -1, long.MaxValue }, decoded.Batches[0].Steps.Array.AsSpan(0, 3).ToArray());
        decoded.Return();
    }

    /// <summary>A batch's key field given twice is one key, merged as protobuf merges a message field; batches after it keep their own keys.</summary>
    [Fact]
    public void A_key_sent_in_two_pieces_is_merged_as_protobuf_merges_it()
    {
        var first = new SeriesKey { RunId = "0123456789abcdef0123456789abcdef", Metric = "loss" };
        first.Labels["rank"] = "0";
        var second = new SeriesKey { Metric = "acc" };
        second.Labels["rank"] = "1";
        second.Labels["host"] = "a";
        var batch = new MemoryStream();
        var b = new CodedOutputStream(batch);
        b.WriteTag(1, WireFormat.WireType.LengthDelimited);
        b.WriteBytes(first.ToByteString());
        b.WriteTag(2, WireFormat.WireType.Varint);
        b.WriteInt64(3);
        b.WriteTag(1, WireFormat.WireType.LengthDelimited);
        b.WriteBytes(second.ToByteString());
        b.WriteTag(4, WireFormat.WireType.Fixed32);
        b.WriteFloat(1f);
        b.Flush();
        var other = new SeriesBatch { Key = new SeriesKey { RunId = "r", Metric = "m" } };
        other.Steps.Add(1);
        other.Values.Add(2);
        var bytes = new MemoryStream();
        var output = new CodedOutputStream(bytes);
        output.WriteTag(1, WireFormat.WireType.LengthDelimited);
        output.WriteString("w");
        output.WriteTag(2, WireFormat.WireType.Varint);
        output.WriteUInt64(1);
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(batch.ToArray()));
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(other.ToByteString());
        output.Flush();

        var decoded = WriteRequestReader.Read(bytes.ToArray());
        AssertSame(WriteRequest.Parser.ParseFrom(bytes.ToArray()), decoded);
        var key = WriteRequestReader.ParseKey(decoded.KeyBytes(decoded.Batches[0]));
        Assert.Equal("acc", key.Metric);
        Assert.Equal(first.RunId, key.RunId);
        Assert.Equal([new("host", "a"), new("rank", "1")], key.Labels.OrderBy(l => l.Key));
        Assert.Equal("m", WriteRequestReader.ParseKey(decoded.KeyBytes(decoded.Batches[1])).Metric);
        decoded.Return();
    }

    [Fact]
    public void Truncated_or_corrupted_payloads_are_refused_cleanly_or_decoded_like_the_reference() =>
        Gen.Select(s_request, Gen.Int[0, 1000], Gen.Byte).Sample((request, cutSeed, flip) =>
        {
            var bytes = request.ToByteArray();
            if (bytes.Length == 0)
            {
                return;
            }

            var at = cutSeed % bytes.Length;
            var damaged = (byte[])bytes.Clone();
            damaged[at] ^= flip;
            foreach (var candidate in new[] { bytes[..at], damaged })
            {
                WriteRequest? reference;
                try
                {
                    reference = WriteRequest.Parser.ParseFrom(candidate);
                }
                catch (InvalidProtocolBufferException)
                {
                    reference = null;
                }

                PooledWriteRequest? decoded = null;
                try
                {
                    decoded = WriteRequestReader.Read(candidate);
                }
                catch (InvalidDataException)
                {
                    // Refused cleanly; no other exception type may escape. (Google.Protobuf's C# parser
                    // is more lenient on damaged input: it skips the invalid wire types 6 and 7 that the
                    // encoding spec forbids, so "the reference accepted it" does not imply valid.)
                }

                if (reference is not null && decoded is not null)
                {
                    AssertSame(reference, decoded);
                }

                decoded?.Return();
            }
        }, iter: 1000);

    private static ReadOnlySequence<byte> Segments(byte[] bytes, int size)
    {
        Segment? first = null, last = null;
        for (var i = 0; i < bytes.Length; i += size)
        {
            var piece = bytes.AsMemory(i, Math.Min(size, bytes.Length - i));
            last = last is null ? first = new Segment(piece, 0) : last.Append(piece);
        }

        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
