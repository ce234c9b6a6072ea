#!/bin/bash
# Downsample latency of the 10M-step series: idle server, right after ingest, and 40 s after ingest.
DLL=${DLL:-/work/main/src/MetricStore.Cli/bin/Release/net10.0/metricstore.dll}
rm -rf /tmp/mix/after-ingest; cp -r /tmp/mix/base /tmp/mix/after-ingest
dotnet $DLL serve --data /tmp/mix/after-ingest --grpc-port 0 --http-port 0 "$@" > /tmp/mix/after-ingest.out 2>&1 &
SPID=$!
for i in $(seq 1 90); do grep -q "Press Ctrl" /tmp/mix/after-ingest.out && break; sleep 1; done
GRPC=$(awk '$1=="gRPC"{print $2; exit}' /tmp/mix/after-ingest.out)
HTTP=$(awk '$1=="HTTP/JSON"{print $2; exit}' /tmp/mix/after-ingest.out)
BIG=$(python3 -c 'import json; print(json.load(open("/tmp/mix/base/bench-query.json"))["BigRun"])')
measure() { python3 - "$HTTP" "$BIG" "$1" <<'PY'
import sys,time,json,urllib.request
http,big,label=sys.argv[1:4]
body=json.dumps({"run_ids":[big],"metric":"train/loss","buckets":1000}).encode()
ts=[]
for i in range(30):
    t=time.perf_counter()
    r=urllib.request.urlopen(urllib.request.Request(http.rstrip("/")+"/v1/query/downsampled",data=body,headers={"content-type":"application/json"})).read()
    ts.append((time.perf_counter()-t)*1000)
ts.sort(); print(f"{label}: first {ts[0]:.1f}.. median {ts[15]:.1f} ms, max {ts[-1]:.1f} ms")
PY
}
measure idle
dotnet $DLL bench ingest --server $GRPC --duration 20 --warmup 5 --no-ceiling --json > /dev/null 2>&1
measure right-after-ingest
sleep 40
measure 40s-after-ingest
grep "let go" /tmp/mix/after-ingest.out
kill -TERM $SPID; wait $SPID 2>/dev/null
