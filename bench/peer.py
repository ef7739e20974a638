"""Side by side with Hugging Face text-embeddings-inference (TEI): the same model file, machine and loads.

Run from the repository root: ``uv run python -m bench.peer --tei-run ~/.cache/embedder-peers/tei/run`` (TEI
built from source: docs/benchmarks.md), or ``--tei-url URL`` for a TEI already running (then its start time,
memory and CPU are not measured, and it stays up while ours run). ``--baseline REF`` adds our service at a git
ref (a temporary worktree, same virtualenv) to the same run, ``--compare KEY=VALUE`` the current tree with
another setting. About 11 minutes with the defaults (16 with --baseline); needs wrk (Debian: apt install wrk).
--loads and --short-tokens narrow a run.

Parity first: every server embeds the same fixed texts (short, long, non-Latin) through /v1/embeddings; the
run stops unless each of ours agrees with TEI to min cosine >= --min-cosine.
Loads (bench.peer_report.LOADS), each from wrk (bench/mixed.lua, C threads x 1 connection, closed loop) on
POST /v1/embeddings: 1 client, short queries (8-32 tokens); 32 clients, short queries; 32 clients with 1
request in 10 a 248-256-token passage; 4 clients with 32 short texts per request; and an idle window (no
requests, --idle s) after a warm-up of --idle-warmup single requests.
Fairness: one server up at a time, each started afresh for each load (its start-to-ready time is measured
every time: spawn to the first 200 from /ready, TEI's /health); both get every CPU of the machine and the same
warm-up (--warmup s of the same load before the window); the order of servers alternates from load to load and
round to round, so drift hits all. Every request carries texts no earlier request of that server process
carried (strided over --pool distinct short texts and a tenth as many passages; a run that would repeat one
stops and says so); our embedding cache is off. TEI runs with its run script's defaults (no batching, thread
or pinning flag changed). CPU: utime + stime of the server process over each window (/proc). Peak RSS: VmHWM
just before each stop, the highest over the loads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench import wrk
from bench.mixed import build_pools, openai_body, status_mb
from bench.peer_report import BY_KEY, LOADS, Load, NoData, summarize, table
from bench.server import Running, Server, started
from bench.service import ROOT, cpu_seconds, embedder, model_dir

CLASSES = {"s": ("short", 8, 32), "p": ("passage", 248, 256)}
PARITY_TEXTS = [
    "A man is eating food.", "!!!", "Hi", "The quick brown fox jumps over the lazy dog.",
    "what is the capital of france?", "Paris is the capital and most populous city of France.",
    "如何更换花呗绑定银行卡", "Ünïcödé, emoji 🙂 and tabs\tin one line.",
    "SELECT * FROM users WHERE id = 42;", " leading and trailing spaces ",
]


def embed(url: str, texts: list[str]) -> np.ndarray:
    r = httpx.post(f"{url}/v1/embeddings", json=openai_body(texts), timeout=60)
    r.raise_for_status()
    return np.array([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])])


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def parity(servers: list[Server], texts: list[str], peer: str) -> dict[str, float]:
    """Min cosine of each server's vectors against the peer's, over ``texts``."""
    vectors = {}
    for s in servers:
        with started(s) as run:
            vectors[s.name] = np.concatenate([embed(run.url, texts[i : i + 32]) for i in range(0, len(texts), 32)])
    return {k: min_cosine(v, vectors[peer]) for k, v in vectors.items() if k != peer}


def unique_pools(tokenizer, short: int, classes: dict = CLASSES) -> dict[str, list[str]]:
    """``short`` distinct short texts and a tenth as many passages. build_pools cuts at random offsets of a text
    that repeats its phrases, so some cuts coincide: draw again (another seed) until there are enough."""
    pools = {}
    for c, spec in classes.items():
        n, texts = short if c == "s" else max(64, short // 10), {}
        for seed in range(7, 17):
            texts |= dict.fromkeys(t for t, _ in build_pools(tokenizer, n, seed, {c: spec})[c])
            if len(texts) >= n:
                break
        else:
            raise RuntimeError(f"only {len(texts)} distinct {spec[0]} texts of {n}: ask for fewer (--pool)")
        pools[c] = list(texts)[:n]
    return pools


def write_bodies(tmp: Path, pools: dict[str, list[str]]) -> dict[str, Path]:
    """The wrk bodies files: one text per request (class-tagged), and 32 short texts per request."""
    single, batch = tmp / "single.txt", tmp / "batch.txt"
    single.write_text("".join(f"{c} {json.dumps(openai_body(t))}\n" for c, pool in pools.items() for t in pool))
    s = pools["s"]
    batch.write_text("".join(f"s {json.dumps(openai_body(s[i : i + 32]))}\n" for i in range(0, len(s) - 31, 32)))
    return {"single": single, "batch": batch}


def measure(run: Running, load: Load, bodies: dict[str, Path], warmup_texts: list[str], args) -> dict:
    """One load on a freshly started server: wrk's window, or the idle window; then its VmHWM."""
    if load.connections:
        file = bodies["batch" if load.texts_per_request > 1 else "single"]
        r = wrk.run(f"{run.url}/v1/embeddings", file, *load.passages, connections=load.connections,
                    warmup=args.warmup, duration=args.duration, pid=run.pid, timeout_s=args.timeout)
        if r["wrk"]["repeats"]:
            raise SystemExit(f"{load.key}: {r['wrk']['repeats']} requests repeated a text (the pool ran out): "
                             f"raise --pool above {args.pool}")
        out = {"wrk": r, "window_s": r["window_s"]}
        print(f"    {r['s']['ok']} + {r['p']['ok']} requests in the window", file=sys.stderr)
        if run.pid:
            wrk.drain(run.pid)
    else:
        with httpx.Client(base_url=run.url, timeout=60) as c:
            for text in warmup_texts:
                c.post("/v1/embeddings", json=openai_body(text)).raise_for_status()
        time.sleep(1.0)
        cpu0 = cpu_seconds(run.pid) if run.pid else None
        time.sleep(args.idle)
        out = {"idle_cpu_s": cpu_seconds(run.pid) - cpu0 if run.pid else float("nan"), "window_s": args.idle}
    return out | {"ready_s": run.ready_s, "hwm_mb": status_mb(run.pid, "VmHWM") if run.pid else None}


def servers_of(args, path: Path, tmp: Path, stack: contextlib.ExitStack) -> list[Server]:
    tei = Server("TEI", "/health", url=args.tei_url.rstrip("/")) if args.tei_url else Server(
        "TEI", "/health", argv=[*shlex.split(os.path.expanduser(args.tei_run)), str(path), "{port}"])
    env = {"EMBEDDER_CACHE_URL": ""}
    current = env | dict(kv.split("=", 1) for kv in args.env)
    ours = [embedder(path, None, env=current)]
    ours += [embedder(path, None, env=current | dict([kv.split("=", 1)]), name=f"embedder {kv}")
             for kv in args.compare]
    if args.baseline:
        wt, git = tmp / "baseline", ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "--detach", str(wt), args.baseline], check=True, capture_output=True)
        stack.callback(subprocess.run, [*git, "remove", "--force", str(wt)], check=False)
        ours.insert(0, embedder(path, None, cwd=wt, env=env, name=f"embedder@{args.baseline}"))
    return [tei, *ours]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__.split("\n\n")[0])
    add = p.add_argument
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--tei-run", metavar="CMD", help="TEI's start command, run as CMD MODEL_DIR PORT")
    who.add_argument("--tei-url", metavar="URL", help="a TEI already serving the same model")
    add("--baseline", metavar="REF", help="also serve our service at this git ref")
    add("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env of the current tree's service")
    add("--compare", action="append", default=[], metavar="KEY=VALUE",
        help="also serve the current tree with this setting (e.g. EMBEDDER_ENGINE=openvino); repeatable")
    add("--model-dir", type=Path, help="model directory (default: found/built as the tests do)")
    add("--json", type=Path, help="also write every number as JSON to this file")
    add("--rounds", type=int, default=2, help="each load runs once per server per round")
    add("--duration", type=float, default=15.0, help="seconds of each measured window")
    add("--warmup", type=float, default=2.0, help="seconds of the same load before each window")
    add("--timeout", type=float, default=10.0, help="wrk's request timeout (s): slower answers count as timeouts")
    add("--idle", type=float, default=10.0, help="seconds of the idle window")
    add("--idle-warmup", type=int, default=64, help="single requests before the idle window")
    add("--pool", type=int, default=40000, help="distinct short texts (and a tenth as many passages)")
    add("--short-tokens", default="8-32", metavar="LO-HI", help="length of a short query, special tokens included")
    add("--loads", default=",".join(x.key for x in LOADS), help=f"comma-separated, of {[x.key for x in LOADS]}")
    add("--min-cosine", type=float, default=0.9999, help="parity threshold against TEI")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop servers, remove the worktree
    path = args.model_dir or model_dir()
    print(f"model dir {path}; {os.cpu_count()} CPUs; loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr)
    from app.config import Settings
    from app.model import EmbeddingModel

    (tokenizer := EmbeddingModel(Settings(model_dir=path))).load()
    lo, hi = (int(x) for x in args.short_tokens.split("-"))
    pools = unique_pools(tokenizer, args.pool, CLASSES | {"s": ("short", lo, hi)})
    loads = [BY_KEY[k] for k in args.loads.split(",")]
    runs: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:  # worktree gone before tmp
        servers = servers_of(args, path, Path(tmp), stack)
        runs = {s.name: {load.key: [] for load in loads} for s in servers}
        bodies = write_bodies(Path(tmp), pools)
        cos = parity(servers, PARITY_TEXTS + pools["s"][-6:] + pools["p"][-2:], "TEI")
        print(f"parity against TEI: min cosine {cos}", file=sys.stderr)
        if min(cos.values()) < args.min_cosine:
            print(f"parity below {args.min_cosine}: not the same model, no benchmark", file=sys.stderr)
            return 1
        step = 0
        for r in range(args.rounds):
            for load in loads:
                order = servers if step % 2 == 0 else servers[::-1]
                step += 1
                for s in order:
                    print(f"round {r + 1}/{args.rounds}: {load.title}: {s.name}", file=sys.stderr)
                    with started(s) as run:
                        runs[s.name][load.key].append(measure(run, load, bodies, pools["s"][:args.idle_warmup], args))
    try:
        summaries = {k: {load.key: summarize(load, v[load.key]) for load in loads} for k, v in runs.items()}
    except NoData as e:
        print(f"no benchmark: {e}", file=sys.stderr)
        return 1
    print(f"Parity: min cosine against TEI over {len(PARITY_TEXTS) + 8} texts: "
          + ", ".join(f"{k} {v:.8f}" for k, v in cos.items()))
    print(table(summaries, "TEI"))
    if args.json:
        body = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}, "parity_min_cosine": cos,
                "summaries": summaries, "runs": runs}
        args.json.write_text(json.dumps(body, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
