"""The embedding cache: hits against misses against no cache, in ONE run (interleaved rounds).

Run from the repository root: ``uv run python -m bench.cache [--json out.json]`` (needs ``redis-server`` and
``wrk`` on PATH: ``apt-get install redis-server wrk``; about 3 minutes).

One redis-server (password, no persistence) on loopback; two services (``python -m app``): one with
``EMBEDDER_CACHE_URL`` pointing at it, one without. Traffic: one short text (8-32 tokens, bench.mixed's
pool) per request, ``POST /v1/embeddings`` from wrk (bench/mixed.lua), at 1 and at 32 connections:

* **hits**: a pool of --pool texts, all written to the cache before the window, so every request hits;
* **misses**: texts never seen before (--fresh per window, cut from a different word offset each round,
  more than a window can use), so every request misses and writes;
* **no cache**: the same fresh texts on the service without a cache;
* **redis down**: after the rounds, redis-server is stopped and the cached service gets fresh texts again
  (connections refused: the first request pays a failed call, then the breaker skips Redis).

Reported per case: requests/s, p50 and p99 (ms) per connection count, server CPU cores, and Redis's own
hit/miss counters as a cross-check.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from bench.mixed import WORDS, openai_body, wrk_stats, wrk_window
from bench.server import free_port
from bench.service import model_dir, service

PASSWORD = "bench-cache"


def texts(n: int, seed: int) -> list[str]:
    """n distinct short texts (8-24 words) cut from bench.service's sentences, tagged so none repeats."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start, words = rng.randrange(len(WORDS) - 30), rng.randint(6, 18)
        out.append(" ".join(WORDS[start : start + words]) + f" #{seed}-{i}")
    return out


def bodies_file(folder: Path, name: str, pool: list[str]) -> Path:
    path = folder / name
    path.write_text("".join(f"s {json.dumps(openai_body(t))}\n" for t in pool))
    return path


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of each measured wrk window")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before each window")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    p.add_argument("--pool", type=int, default=512, help="texts of the hit pool")
    p.add_argument("--fresh", type=int, default=6000, help="new texts per miss window")
    args = p.parse_args(argv)
    for tool in ("redis-server", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install {tool.split('-')[0]}")
    path, port = model_dir(), free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rds = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass",
                                PASSWORD, "--save", "", "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(url, password=PASSWORD)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        env = {"EMBEDDER_CACHE_URL": url, "EMBEDDER_CACHE_PASSWORD": PASSWORD}
        results: dict[str, dict[int, dict]] = {}
        try:
            with service(path, env=env) as (cached_url, cached_pid), service(path) as (plain_url, plain_pid):
                hit_pool = texts(args.pool, seed=0)
                with httpx.Client(base_url=cached_url, timeout=120) as c:  # fill the cache
                    for i in range(0, len(hit_pool), 64):
                        c.post("/embed", json={"inputs": hit_pool[i : i + 64]}).raise_for_status()
                time.sleep(1)
                hits = bodies_file(folder, "hits", hit_pool)
                st = {(case, conns): wrk_stats() for case in ("hits", "misses", "no cache") for conns in (1, 32)}
                for rnd in range(args.rounds):
                    for conns in (1, 32):
                        args.connections = conns
                        fresh = texts(args.fresh, seed=1000 + rnd * 10 + conns)
                        for case, target, pid, bodies in (
                            ("hits", cached_url, cached_pid, hits),
                            ("misses", cached_url, cached_pid, bodies_file(folder, f"m{rnd}{conns}", fresh)),
                            ("no cache", plain_url, plain_pid, bodies_file(folder, f"n{rnd}{conns}", fresh)),
                        ):
                            print(f"round {rnd + 1}/{args.rounds}: {case}, {conns} connection(s)", file=sys.stderr)
                            wrk_window(f"{target}/v1/embeddings", pid, bodies, 0, 1, args, st[(case, conns)])
                info = client.info("stats")
                rds.terminate()
                rds.wait(10)
                for conns in (1, 32):
                    args.connections = conns
                    print(f"redis down, {conns} connection(s)", file=sys.stderr)
                    st[("redis down", conns)] = wrk_stats()
                    down = bodies_file(folder, f"d{conns}", texts(args.fresh, seed=5000 + conns))
                    wrk_window(f"{cached_url}/v1/embeddings", cached_pid, down, 0, 1, args, st[("redis down", conns)])
                metrics = httpx.get(f"{cached_url}/metrics").text
                ready = httpx.get(f"{cached_url}/ready").json()["cache"]
        finally:
            if rds.poll() is None:
                rds.terminate()
                rds.wait(10)
    for (case, conns), s in st.items():
        lat = s["s"]["latencies_ms"]
        results.setdefault(case, {})[conns] = {
            "requests_per_s": s["s"]["ok"] / s["seconds"], "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "non_200": s["s"]["non_200"], "server_cores": s["cpu"] / s["seconds"]}
    lines = ["| case | 1 conn: req/s | p50 (ms) | p99 (ms) | 32 conns: req/s | p50 (ms) | p99 (ms) | server cores (32) | non-2xx |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, r in results.items():
        a, b = r[1], r[32]
        lines.append(f"| {case} | {a['requests_per_s']:.1f} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} | "
                     f"{b['requests_per_s']:.1f} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} | {b['server_cores']:.2f} | "
                     f"{a['non_200'] + b['non_200']} |")
    hit_ratio = results["hits"][32]["requests_per_s"] / results["no cache"][32]["requests_per_s"]
    lines.append(f"\n32 connections, hits / no cache: {hit_ratio:.1f}x; 1 connection p50, hits / no cache: "
                 f"{results['hits'][1]['p50_ms'] / results['no cache'][1]['p50_ms']:.2f}x. Redis: "
                 f"keyspace_hits {info['keyspace_hits']}, keyspace_misses {info['keyspace_misses']}.")
    lines += [x for x in metrics.splitlines() if x.startswith(("embedder_cache_hits_total", "embedder_cache_misses_total",
                                                                "embedder_cache_errors_total", "embedder_cache_skipped_total"))]
    lines.append(f"/ready cache while Redis was down: {ready}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
