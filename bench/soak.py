"""Soak benchmark (make soak; not in CI): a real bnserve under Predict load
and a stream of small training jobs for N minutes, with the server's resident
set size (VmRSS from /proc/PID/status) sampled every few seconds.

Prints one row per sample (elapsed seconds, RSS, jobs finished, Predicts
answered) and then the RSS growth per minute after the warm-up, fitted by
least squares, and per job. Each job trains a 1-epoch 16-unit network on 200
digits and registers a version, which the stream deletes again, so the
registry stays the same size and what grows is what the server keeps per job.

usage: soak.py BNSERVE PYTHON_PACKAGE_DIR DATA_DIR [MINUTES] [SAMPLE_SECONDS]
"""
import os
import sys
import threading
import time

import numpy as np

BNSERVE, PACKAGE_DIR, DATA_DIR = sys.argv[1:4]
MINUTES = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
SAMPLE_SECONDS = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
WARMUP_SECONDS = 30.0
PREDICT_THREADS = 2
sys.path.insert(0, PACKAGE_DIR)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "python"))
from bnserve import Client  # noqa: E402
from bnserve_process import BnserveProcess  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def main():
    with BnserveProcess(BNSERVE, DATA_DIR, ["--workers=1"]) as server:
        pid = server._process.pid
        client = Client(server.grpc_address, timeout=60)
        served = client.wait(client.train("soak-served", limit=1000, epochs=2,
                                          hidden_sizes=(64, 64)).job_id)
        assert served.state == "SUCCEEDED", served
        stop = threading.Event()
        counts = {"predicts": 0, "jobs": 0, "errors": 0}
        lock = threading.Lock()
        rows = np.random.default_rng(1).random((32, 784), dtype=np.float32)

        def predict_loop():
            while not stop.is_set():
                try:
                    client.predict("soak-served", rows)
                    with lock:
                        counts["predicts"] += 1
                except Exception:  # noqa: BLE001 - counted and reported
                    with lock:
                        counts["errors"] += 1

        def job_loop():
            while not stop.is_set():
                try:
                    job = client.wait(client.train("soak-jobs", limit=200, epochs=1,
                                                   hidden_sizes=(16,)).job_id)
                    if job.state == "SUCCEEDED":
                        client.delete_version("soak-jobs", job.model_version)
                    with lock:
                        counts["jobs"] += 1
                except Exception:  # noqa: BLE001 - counted and reported
                    with lock:
                        counts["errors"] += 1

        threads = [threading.Thread(target=predict_loop) for _ in range(PREDICT_THREADS)]
        threads.append(threading.Thread(target=job_loop))
        for t in threads:
            t.start()
        start = time.monotonic()
        samples = []
        print("%8s %10s %8s %10s" % ("seconds", "RSS MiB", "jobs", "predicts"))
        try:
            while True:
                elapsed = time.monotonic() - start
                with lock:
                    jobs, predicts = counts["jobs"], counts["predicts"]
                samples.append((elapsed, rss_kib(pid), jobs, predicts))
                print("%8.0f %10.1f %8d %10d" % (elapsed, samples[-1][1] / 1024, jobs, predicts),
                      flush=True)
                if elapsed >= MINUTES * 60:
                    break
                time.sleep(SAMPLE_SECONDS)
        finally:
            stop.set()
            for t in threads:
                t.join()
        after = [s for s in samples if s[0] >= WARMUP_SECONDS]
        if len(after) < 3:
            print("too short to fit a growth after the %.0f s warm-up" % WARMUP_SECONDS)
            return 1
        t = np.array([s[0] for s in after]) / 60.0
        rss = np.array([s[1] for s in after]) / 1024.0
        slope = np.polyfit(t, rss, 1)[0]
        jobs_after = after[-1][2] - after[0][2]
        grown_kib = after[-1][1] - after[0][1]
        print("after the %.0f s warm-up: RSS %.1f -> %.1f MiB over %.1f min, "
              "growth %.2f MiB/min (least squares); %d jobs, %.2f KiB per job; "
              "%d predicts (%.0f/s), %d errors"
              % (WARMUP_SECONDS, rss[0], rss[-1], t[-1] - t[0], slope, jobs_after,
                 grown_kib / jobs_after if jobs_after else float("nan"), counts["predicts"],
                 counts["predicts"] / samples[-1][0], counts["errors"]))
        return 0 if counts["errors"] == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
