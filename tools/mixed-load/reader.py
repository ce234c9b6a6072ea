"""Reads every run's full train/loss series as Arrow, over and over, from THREADS threads (2 unless
given), until STOP exists. With RUN_NAME, only the runs of that name (query-big: the 10M-step series).

   python3 reader.py HTTP_URL STOP_FILE [THREADS [RUN_NAME]]
"""
import json
import os
import sys
import threading
import time
import urllib.request

http, stop = sys.argv[1].rstrip("/"), sys.argv[2]
threads_n = int(sys.argv[3]) if len(sys.argv) > 3 else 2
run_filter = f'name = "{sys.argv[4]}"' if len(sys.argv) > 4 else ""


def post(path, body):
    request = urllib.request.Request(http + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))


runs, token = [], ""
while True:
    page = post("/v1/runs/search", {"page_size": 500, "page_token": token, "filter": run_filter})
    runs += [r["runId"] for r in page.get("runs", [])]
    token = page.get("nextPageToken", "")
    if not token:
        break
print(f"{len(runs)} runs", flush=True)
reads = [0] * threads_n


def loop(k):
    i = k
    while not os.path.exists(stop):
        run = runs[i % len(runs)]
        i += threads_n
        request = urllib.request.Request(f"{http}/v1/query/points?run_id={run}&metric=train%2Floss", headers={"accept": "application/vnd.apache.arrow.stream"})
        try:
            with urllib.request.urlopen(request) as response:
                while response.read(1 << 20):
                    pass
            reads[k] += 1
        except Exception as e:  # counted by run.sh; a failed read must not end the load
            print("read failed", run, e, flush=True)
            time.sleep(0.5)


threads = [threading.Thread(target=loop, args=(k,)) for k in range(threads_n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"reads={sum(reads)}", flush=True)
