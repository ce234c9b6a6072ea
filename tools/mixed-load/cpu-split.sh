#!/bin/bash
# usage: cpu-split.sh grpc|http [SECONDS]
# One reader of the 10M-step series (query-big) alone against a server on a copy of /tmp/mix/base,
# for SECONDS (25 unless given): the full reads it did and the CPU time (utime + stime, from
# /proc/PID/stat) the server and the reader spent, per point read. The reader's includes its start-up.
if pgrep -f "metricstore.dll serve" >/dev/null; then echo "a server is already running"; exit 1; fi
reader=$1; seconds=${2:-25}
DLL=${DLL:-/work/main/src/MetricStore.Cli/bin/Release/net10.0/metricstore.dll}
rm -rf /tmp/mix/cpu /tmp/mix/cpu-stop; cp -r /tmp/mix/base /tmp/mix/cpu
dotnet $DLL serve --data /tmp/mix/cpu --grpc-port 0 --http-port 0 > /tmp/mix/cpu-serve.out 2>&1 &
SPID=$!
for i in $(seq 1 90); do grep -q "Press Ctrl" /tmp/mix/cpu-serve.out && break; sleep 1; done
GRPC=$(awk '$1=="gRPC"{print $2; exit}' /tmp/mix/cpu-serve.out)
HTTP=$(awk '$1=="HTTP/JSON"{print $2; exit}' /tmp/mix/cpu-serve.out)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
s0=$(ticks $SPID)
if [ "$reader" = grpc ]; then dotnet /tmp/mix/grpc-reader/grpc-reader.dll $GRPC /tmp/mix/cpu-stop 1 query-big > /tmp/mix/cpu-reader.out 2>&1 & RPID=$!
else python3 "$(dirname "$0")/reader.py" $HTTP /tmp/mix/cpu-stop 1 query-big > /tmp/mix/cpu-reader.out 2>&1 & RPID=$!; fi
sleep $seconds
r1=$(ticks $RPID); s1=$(ticks $SPID)
touch /tmp/mix/cpu-stop; wait $RPID
kill -TERM $SPID; wait $SPID 2>/dev/null
reads=$(awk -F= '/^reads=/{print $2}' /tmp/mix/cpu-reader.out)
hz=$(getconf CLK_TCK)
# Every full read of query-big is 10M points.
python3 -c "
p = $reads * 10_000_000
print(f'$reader reads=$reads points_per_sec={p / $seconds / 1e6:.1f}M server_ns_per_point={($s1 - $s0) / $hz * 1e9 / p:.1f} reader_ns_per_point={$r1 / $hz * 1e9 / p:.1f}')"
