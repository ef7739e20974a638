"""SIGTERM under load: what a rolling update does to requests (docs/scheduling.md, "Shutdown").

Run from the repository root: ``uv run python -m bench.rollout [--clients 16] [--delay 5]`` (about 30 s).

A real ``python -m app`` with EMBEDDER_SHUTDOWN_DELAY_S=--delay; --clients threads send single-text
``POST /embed`` requests back to back (each on its own keep-alive connection; a new connection after any
error), and one more thread polls /ready. After a few seconds of load the server gets SIGTERM; the
clients go on until the process has exited. Reported: requests answered before and during the grace,
their statuses, /ready's statuses during the grace, requests refused or dropped (connection errors
before exit), and the time from SIGTERM to exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter

import httpx

from bench.server import free_port
from bench.service import ROOT, model_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rollout", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--delay", type=float, default=5.0, help="EMBEDDER_SHUTDOWN_DELAY_S")
    p.add_argument("--load", type=float, default=3.0, help="seconds of load before SIGTERM")
    args = p.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"EMBEDDER_MODEL_DIR": str(model_dir()), "EMBEDDER_PORT": str(port), "EMBEDDER_HOST": "127.0.0.1",
           "EMBEDDER_SHUTDOWN_DELAY_S": str(args.delay), "EMBEDDER_LOG_LEVEL": "warning"}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log)
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        sigterm_at: list[float] = []
        done = threading.Event()
        results: list[tuple[float, str]] = []  # (time, "200" / "503" / "refused" / "dropped")
        ready: list[tuple[float, int]] = []

        def client(k: int) -> None:
            c = httpx.Client(base_url=url, timeout=60)
            i = 0
            while not done.is_set():
                i += 1
                try:
                    r = c.post("/embed", json={"inputs": [f"client {k} request {i}"]})
                    results.append((time.monotonic(), str(r.status_code)))
                except httpx.ConnectError:
                    results.append((time.monotonic(), "refused"))
                    time.sleep(0.05)
                except httpx.TransportError:
                    results.append((time.monotonic(), "dropped"))
                    c.close()
                    c = httpx.Client(base_url=url, timeout=60)
            c.close()

        def poll_ready() -> None:
            while not done.is_set():
                try:
                    ready.append((time.monotonic(), httpx.get(f"{url}/ready", timeout=2).status_code))
                except httpx.TransportError:
                    ready.append((time.monotonic(), 0))
                time.sleep(0.1)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        threads.append(threading.Thread(target=poll_ready))
        for t in threads:
            t.start()
        time.sleep(args.load)
        sigterm_at.append(time.monotonic())
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=args.delay + 120)
        exited = time.monotonic()
        time.sleep(0.5)
        done.set()
        for t in threads:
            t.join(60)
    t0 = sigterm_at[0]
    grace_end = t0 + args.delay
    before = Counter(s for t, s in results if t < t0)
    grace = Counter(s for t, s in results if t0 <= t < grace_end)
    drain = Counter(s for t, s in results if grace_end <= t <= exited)
    after = Counter(s for t, s in results if t > exited)
    ready_grace = Counter(s for t, s in ready if t0 <= t < grace_end)
    print(f"clients {args.clients}, delay {args.delay} s; exit code {code}, {exited - t0:.2f} s after SIGTERM")
    print(f"before SIGTERM:        {dict(before)}")
    print(f"during the grace:      {dict(grace)}   /ready: {dict(ready_grace)}")
    print(f"drain until exit:      {dict(drain)}")
    print(f"after exit (expected): {dict(after)}")
    lost = sum(n for s, n in grace.items() if s != "200") + drain["dropped"]
    print(f"lost: {lost} (not 200 during the grace, or dropped in flight after it; connections refused after the "
          f"grace are expected: by then load balancers have stopped routing here)")
    return 0 if lost == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
