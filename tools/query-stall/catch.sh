#!/bin/bash
# Waits for the query stall under seal + compaction (docs/benchmarks.md, "Open problem") and dumps
# the measuring server's managed stacks while it is stuck.
#
#   tools/query-stall/catch.sh [path/to/metricstore.dll] [attempts]
#   REUSE=/tmp/qb/data tools/query-stall/catch.sh ...   # measure an existing dataset every attempt
#
# Each attempt runs 'bench query' on a new data directory (build, restart, measure), or with
# REUSE set on that dataset (restart, measure). When the
# bench prints nothing for 16 s before its DuckDB phase, the server is stalled: its stacks go to
# /tmp/stall-stack.txt (dotnet-stack: 'dotnet tool install -g dotnet-stack'), its sockets to
# /tmp/stall-ss.txt and a full dump to /tmp/stall-server.dmp (dotnet-dump). Stalls were 4 in 30 runs of commit 1e2616d; none in 9 runs of later builds.
set -u
dll=${1:-src/MetricStore.Cli/bin/Release/net10.0/metricstore.dll}
attempts=${2:-12}
log=$(mktemp)
data=$(mktemp -d)
for attempt in $(seq 1 "$attempts"); do
  : > "$log"
  if [ -n "${REUSE:-}" ]; then target=$REUSE; else rm -rf "$data"; target=$data; fi
  timeout 400 dotnet "$dll" bench query --data "$target" --json > "$log" 2>&1 &
  bench=$!
  while ! grep -q "server restarted" "$log"; do sleep 0.5; kill -0 $bench 2>/dev/null || break; done
  pid=$(grep -o "server restarted (pid [0-9]*" "$log" | grep -o "[0-9]*$")
  last=$(wc -l < "$log"); since=0; caught=0
  while kill -0 $bench 2>/dev/null; do
    sleep 1
    now=$(wc -l < "$log")
    if [ "$now" != "$last" ]; then last=$now; since=0; else since=$((since + 1)); fi
    if [ $since -ge 16 ] && ! grep -q "DuckDB" "$log"; then
      echo "STALL in attempt $attempt, server $pid, after: $(tail -1 "$log" | cut -c1-100)"
      ps -o pid,%cpu,etime,rss,nlwp -p "$pid"
      "${DOTNET_STACK:-$HOME/.dotnet/tools/dotnet-stack}" report -p "$pid" > /tmp/stall-stack.txt 2>&1
      ss -tnpi 2>/dev/null | grep -A1 "pid=$pid" > /tmp/stall-ss.txt
      # The whole heap too: Kestrel's Http2Connection (open streams, connection flow-control window)
      # is only visible there, since an await stuck on flow control holds no thread.
      "${DOTNET_DUMP:-$HOME/.dotnet/tools/dotnet-dump}" collect -p "$pid" --type Full -o /tmp/stall-server.dmp > /dev/null 2>&1
      caught=1; break
    fi
  done
  wait $bench
  [ $caught = 1 ] && break
  echo "attempt $attempt: no stall"
done
cp "$log" /tmp/stall-bench.log
rm -rf "$data" "$log"
