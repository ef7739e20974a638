"""Threads under a CPU quota: the image in ``docker run --cpus N`` (N below the host's cores), settings compared.

Run from the repository root: ``uv run python -m bench.quota --image IMAGE [--cpus 1] [--json out.json]``
(the image as `.ci/run` loads it: ``dagger call build export --path image.tar && docker load -i image.tar``;
needs Docker and wrk; about 3 minutes).

Cases, each a container of the image under ``--cpus``:

* **quota-aware** (the default): workers = the quota's CPUs + 1, one thread each (app/cpus.py);
* **host-sized, one call**: ``EMBEDDER_WORKERS=1 EMBEDDER_INTRA_OP_THREADS=--host-cores``: what the service did
  before (one call at a time, ORT's pool sized to the host's cores), on a node of ``--host-cores`` cores;
* **host-sized workers**: ``EMBEDDER_WORKERS=--host-cores + 1``: workers sized by the host, not the quota.

Traffic: bench.mixed's 90/10 mix and short-only, 32 wrk connections, one text per request. Reported per case:
requests/s, p50/p99 per class, the container's CPU (cgroup usage, so throttling shows as cores <= quota) and
its peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.mixed import build_pools, openai_body, parse_mix, wrk_stats, wrk_window
from bench.service import model_dir


def run_container(image: str, cpus: float, env: dict[str, str]) -> tuple[str, str, int]:
    args = ["docker", "run", "-d", "--cpus", str(cpus), "-p", "127.0.0.1::8000"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    cid = subprocess.run([*args, image], check=True, capture_output=True, text=True).stdout.strip()
    port = subprocess.run(["docker", "port", cid, "8000/tcp"], check=True, capture_output=True, text=True).stdout
    url = "http://" + port.splitlines()[0].strip()
    pid = int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", cid], check=True, capture_output=True,
                             text=True).stdout)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return cid, url, pid
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True).stdout
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    raise RuntimeError(f"container not ready:\n{logs[-3000:]}")


def peak_mb(cid: str) -> float:
    full = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", cid], capture_output=True, text=True).stdout.strip()
    for path in (f"/sys/fs/cgroup/memory/docker/{full}/memory.max_usage_in_bytes",
                 f"/sys/fs/cgroup/system.slice/docker-{full}.scope/memory.peak"):
        if Path(path).exists():
            return int(Path(path).read_text()) / 2**20
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", required=True, help="the image (loaded into Docker)")
    p.add_argument("--cpus", type=float, default=1.0, help="docker run --cpus (below the host's cores)")
    p.add_argument("--host-cores", type=int, default=32, help="cores of the node the host-sized cases stand for")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--mixes", default="100/0,90/10")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cases = {
        "quota-aware": {},
        "host-sized, one call": {"EMBEDDER_WORKERS": "1", "EMBEDDER_INTRA_OP_THREADS": str(args.host_cores)},
        "host-sized workers": {"EMBEDDER_WORKERS": str(args.host_cores + 1)},
    }
    from app.config import Settings
    from app.model import EmbeddingModel

    tokenizer = EmbeddingModel(Settings(model_dir=model_dir()))
    tokenizer.load()
    pools = build_pools(tokenizer, 256, seed=1)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "bodies"
        bodies.write_text("".join(f"{c} {json.dumps(openai_body(t))}\n" for c in "sp" for t, _ in pools[c]))
        for name, env in cases.items():
            print(f"{name}: starting", file=sys.stderr)
            cid, url, pid = run_container(args.image, args.cpus, env)
            try:
                for mix in args.mixes.split(","):
                    a, b = parse_mix(mix)
                    st = wrk_stats()
                    wrk_window(f"{url}/v1/embeddings", pid, bodies, a, b, args, st)
                    lat = sorted(st["s"]["latencies_ms"] + st["p"]["latencies_ms"])
                    results.setdefault(name, {})[mix] = {
                        "requests_per_s": (st["s"]["ok"] + st["p"]["ok"]) / st["seconds"],
                        "p50_ms": lat[len(lat) // 2] if lat else None,
                        "p99_ms": lat[int(len(lat) * 0.99)] if lat else None,
                        "non_200": st["s"]["non_200"] + st["p"]["non_200"],
                        "process_cores": st["cpu"] / st["seconds"],
                    }
                results[name]["peak_mb"] = peak_mb(cid)
                capacity = next((json.loads(x) for x in subprocess.run(["docker", "logs", cid], capture_output=True,
                                 text=True).stdout.splitlines() if '"capacity"' in x), {})
                results[name]["capacity_log"] = {k: capacity.get(k) for k in ("cpus", "cpus_from", "cpu_quota", "workers", "intra_op_threads")}
            finally:
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    lines = [f"docker run --cpus {args.cpus}, {args.connections} connections, one text per request", "",
             "| case | mix | req/s | p50 (ms) | p99 (ms) | cores used | non-2xx | peak MB | chosen |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in results.items():
        for mix in args.mixes.split(","):
            m = r[mix]
            lines.append(f"| {name} | {mix} | {m['requests_per_s']:.1f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} | "
                         f"{m['process_cores']:.2f} | {m['non_200']} | {r['peak_mb']:.0f} | {r['capacity_log']} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
