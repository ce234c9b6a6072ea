#!/bin/bash
# usage: alloc.sh DLL LABEL : readers only, then 10 s of counters
dll=$1; label=$2
rm -rf /tmp/mix/arun /tmp/mix/astop; cp -r /tmp/mix/base /tmp/mix/arun
dotnet $dll serve --data /tmp/mix/arun --grpc-port 0 --http-port 0 > /tmp/mix/aserve.out 2>&1 &
S=$!
for i in $(seq 1 90); do grep -q "Press Ctrl" /tmp/mix/aserve.out && break; sleep 1; done
H=$(awk '$1=="HTTP/JSON"{print $2; exit}' /tmp/mix/aserve.out)
python3 "$(dirname "$0")/reader.py" $H /tmp/mix/astop > /tmp/mix/areader-$label.out 2>&1 &
R=$!
sleep 15
rm -f /tmp/mix/c-$label.csv
~/.dotnet/tools/dotnet-counters collect -p $S --counters System.Runtime --format csv -o /tmp/mix/c-$label.csv --duration 00:00:10 >/dev/null 2>&1
hwm=$(awk '/VmHWM/{print $2}' /proc/$S/status)
touch /tmp/mix/astop; wait $R; kill -TERM $S; wait $S
alloc=$(grep "total_allocated" /tmp/mix/c-$label.csv | awk -F, '{s+=$NF; n++} END{printf "%.0f", s/n/1e6}')
echo "$label alloc_MB_per_s=$alloc hwm_mib=$((hwm/1024)) $(tail -1 /tmp/mix/areader-$label.out)"
