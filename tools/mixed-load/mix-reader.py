import json, sys, threading, time, urllib.request
http = sys.argv[1].rstrip('/')
stop_file = sys.argv[2]
def post(path, body):
    req = urllib.request.Request(http + path, data=json.dumps(body).encode(), headers={'content-type': 'application/json'})
    return json.load(urllib.request.urlopen(req))
runs, token = [], ""
while True:
    r = post('/v1/runs/search', {"page_size": 500, "page_token": token})
    runs += [x["runId"] for x in r.get("runs", [])]
    token = r.get("nextPageToken", "")
    if not token: break
print(f"{len(runs)} runs", flush=True)
counts = [0, 0]
def loop(k):
    i = k
    import os
    while not os.path.exists(stop_file):
        run = runs[i % len(runs)]; i += 2
        req = urllib.request.Request(f"{http}/v1/query/points?run_id={run}&metric=train%2Floss", headers={'accept': 'application/vnd.apache.arrow.stream'})
        try:
            with urllib.request.urlopen(req) as resp:
                while resp.read(1 << 20): pass
            counts[k] += 1
        except Exception as e:
            print("read failed", run, e, flush=True); time.sleep(0.5)
ts = [threading.Thread(target=loop, args=(k,)) for k in range(2)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"reads {sum(counts)}", flush=True)
