#!/bin/bash
# usage: [SERVE_ENV="VAR=value ..."] mix.sh LABEL READERS(0/1) [serve args...]
# SERVE_ENV sets environment variables for the server only, not for the bench ingest client.
# READERS_ARGS="THREADS [RUN_NAME]" sets reader.py's threads and runs (2 threads over every run unless given).
# INGEST_ARGS="..." adds arguments to bench ingest (e.g. "--writers 4 --series 5000 --batch 10" for 20,000 series).
# READER=grpc reads with grpc-reader.cs (ReadSeries over gRPC) instead of reader.py (Arrow over HTTP);
# build it first: dotnet build -c Release tools/mixed-load/grpc-reader.cs -o /tmp/mix/grpc-reader
if pgrep -f "metricstore.dll serve" >/dev/null; then echo "a server is already running"; exit 1; fi
label=$1; readers=$2; shift 2
rm -rf /tmp/mix/run /tmp/mix/stop /tmp/mix/rss-$label.txt; cp -r /tmp/mix/base /tmp/mix/run
DLL=${DLL:-/work/main/src/MetricStore.Cli/bin/Release/net10.0/metricstore.dll}
env $SERVE_ENV dotnet $DLL serve --data /tmp/mix/run --grpc-port 0 --http-port 0 "$@" > /tmp/mix/serve.out 2>&1 &
SPID=$!
for i in $(seq 1 90); do grep -q "Press Ctrl" /tmp/mix/serve.out && break; sleep 1; done
GRPC=$(awk '$1=="gRPC"{print $2; exit}' /tmp/mix/serve.out)
HTTP=$(awk '$1=="HTTP/JSON"{print $2; exit}' /tmp/mix/serve.out)
# RSS every 0.5 s with a millisecond timestamp, to split the peak by phase below.
(while kill -0 $SPID 2>/dev/null; do echo "$(date +%s%3N) $(awk '/VmRSS/{print $2}' /proc/$SPID/status)" >> /tmp/mix/rss-$label.txt; sleep 0.5; done) &
if [ "$readers" = 1 ]; then
  if [ "$READER" = grpc ]; then dotnet /tmp/mix/grpc-reader/grpc-reader.dll $GRPC /tmp/mix/stop $READERS_ARGS > /tmp/mix/reader-$label.out 2>&1 & RPID=$!
  else python3 "$(dirname "$0")/reader.py" $HTTP /tmp/mix/stop $READERS_ARGS > /tmp/mix/reader-$label.out 2>&1 & RPID=$!; fi
  sleep 20
fi
ingest_start=$(date +%s%3N)
# The bench's progress lines, timestamped: "[bench] verifying ..." marks the end of the ingest.
out=$(dotnet $DLL bench ingest --server $GRPC --duration 20 --warmup 10 --no-ceiling --json $INGEST_ARGS 2> >(while IFS= read -r l; do echo "$(date +%s%3N) $l"; done > /tmp/mix/bench-$label.err) | tail -1)
verify_start=$(awk '/verifying/{print $1; exit}' /tmp/mix/bench-$label.err)
hwm=$(grep VmHWM /proc/$SPID/status | awk '{print $2}')
touch /tmp/mix/stop; [ -n "$RPID" ] && wait $RPID
kill -TERM $SPID; wait $SPID 2>/dev/null
phase() { awk -v a=$1 -v b=$2 '$1>=a && $1<b && $2>m{m=$2} END{print int(m/1024)}' /tmp/mix/rss-$label.txt; }
pre=$(phase 0 $ingest_start)
during=$(phase $ingest_start ${verify_start:-99999999999999})
verify=$(phase ${verify_start:-99999999999999} 99999999999999)
echo "$label hwm_mib=$((hwm/1024)) readers_only_max_mib=$pre ingest_max_mib=$during verify_max_mib=$verify readers=$(tail -1 /tmp/mix/reader-$label.out 2>/dev/null) $(echo $out | python3 -c 'import json,sys; d=json.load(sys.stdin); print("pps=%.2fM p99=%s ok=%s" % (d["points_per_sec"]/1e6, d["ack_p99_ms"], d["verified"]))')"
