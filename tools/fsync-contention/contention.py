"""How long a WAL-like fsync takes while another thread writes large files and fsyncs them.

   python3 contention.py DIR [--writeback-mib N]

One thread writes 200 MiB files in 1 MiB writes and fsyncs each (like seals and compactions
writing point files). With --writeback-mib N it also calls fdatasync every N MiB, so that no more
than N MiB is dirty at a time (the server does this with sync_file_range, which Python's os module
does not have). Meanwhile the main thread writes 256 KiB and fsyncs, 400 times, 5 ms apart (like
the WAL's group commits), first into a growing file with fsync, then into a preallocated one with
fdatasync, twice each, and prints the latency percentiles.
"""
import argparse
import os
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--writeback-mib", type=int, default=0)
args = parser.parse_args()
os.makedirs(args.dir, exist_ok=True)
stop = False


def large_files():
    buf = os.urandom(1 << 20)
    k = 0
    while not stop:
        fd = os.open(os.path.join(args.dir, f"large-{k % 3}.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for j in range(200):
            os.write(fd, buf)
            if args.writeback_mib and j % args.writeback_mib == args.writeback_mib - 1:
                os.fdatasync(fd)
            if stop:
                break
        os.fsync(fd)
        os.close(fd)
        k += 1


def wal(mode, n=400, size=256 << 10):
    path = os.path.join(args.dir, f"wal-{mode}.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    if mode == "preallocated-fdatasync":
        zeros = b"\0" * size
        for _ in range(n):
            os.write(fd, zeros)
        os.fsync(fd)
    buf = os.urandom(size)
    latencies = []
    for i in range(n):
        os.pwrite(fd, buf, i * size)
        start = time.perf_counter()
        (os.fdatasync if mode == "preallocated-fdatasync" else os.fsync)(fd)
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(0.005)
    os.close(fd)
    os.remove(path)
    latencies.sort()
    at = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))]
    print(f"{mode:24} p50 {at(0.5):6.1f} ms  p90 {at(0.9):6.1f}  p99 {at(0.99):6.1f}  max {latencies[-1]:6.1f}  over 50 ms: {sum(x > 50 for x in latencies)} of {n}", flush=True)


writer = threading.Thread(target=large_files)
writer.start()
try:
    for _ in range(2):
        for mode in ["growing-fsync", "preallocated-fdatasync"]:
            wal(mode)
finally:
    stop = True
    writer.join()
    for k in range(3):
        path = os.path.join(args.dir, f"large-{k}.bin")
        if os.path.exists(path):
            os.remove(path)
