"""Reads every run's full train/loss series as Arrow, over and over, from two threads, until STOP exists.

   python3 reader.py HTTP_URL STOP_FILE
"""
import json
import os
import sys
import threading
import time
import urllib.request

http, stop = sys.argv[1].rstrip("/"), sys.argv[2]


def post(path, body):
    request = urllib.request.Request(http + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))


runs, token = [], ""
while True:
    page = post("/v1/runs/search", {"page_size": 500, "page_token": token})
    runs += [r["runId"] for r in page.get("runs", [])]
    token = page.get("nextPageToken", "")
    if not token:
        break
print(f"{len(runs)} runs", flush=True)
reads = [0, 0]


def loop(k):
    i = k
    while not os.path.exists(stop):
        run = runs[i % len(runs)]
        i += 2
        request = urllib.request.Request(f"{http}/v1/query/points?run_id={run}&metric=train%2Floss", headers={"accept": "application/vnd.apache.arrow.stream"})
        try:
            with urllib.request.urlopen(request) as response:
                while response.read(1 << 20):
                    pass
            reads[k] += 1
        except Exception as e:  # counted by run.sh; a failed read must not end the load
            print("read failed", run, e, flush=True)
            time.sleep(0.5)


threads = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"reads={sum(reads)}", flush=True)
