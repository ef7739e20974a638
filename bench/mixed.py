"""Mixed traffic: short queries and long passages on one service, per-class latency, against the ideal.

Run from the repository root: ``uv run python -m bench.mixed [--baseline REF] [--env KEY=VALUE] [--rss]
[--json out.json]`` (``--help`` lists the knobs; the defaults take about 2.5 minutes, 4.5 with --baseline).

Texts: two deterministic pools (--pool texts each) cut from bench.service's sentences to a length measured
with the app's own tokenizer (special tokens included): short/query-like 8-32 tokens, passages 128-256 tokens;
target lengths evenly spaced over each range (about uniform; each text within a token or two of its target).
Traffic: one text per request, ``POST /v1/embeddings {"model", "input": text, "encoding_format": "float"}``,
from wrk (bench/mixed.lua: C threads x 1 connection, closed loop, C = --connections). Mixes by requests,
short/passage: 100/0 (the fairness baseline), 90/10, 50/50; thread k's n-th request is a passage when
((n + k) * A) % B < A (A/B = passage share). wrk times each class itself (LuaJIT, CLOCK_MONOTONIC) and counts
only responses completing inside the window (each run starts --warmup s before it; then the server is left
to finish what wrk dropped). CPU: utime + stime of the server and of wrk (/proc/PID/stat) over the window.
Ideal: the app's own EmbeddingModel in this process (tokenize + run + normalize on the engine the current tree serves with: bench.service.engine_embedder),
whole passes over --ideal-texts texts of the mix in its exact proportions, sorted by length, in calls of <= 32
texts and <= --batch-tokens padded tokens (texts x longest). Targets (from the issue): server texts/s >= 0.8 x
ideal for every mix; short p99 under a mix <= 3 x short p99 of the short-only mix. Everything runs in
interleaved rounds (the services stay up), so the drift of a noisy machine hits all paths alike.
--baseline REF: also serve REF from a temporary detached git worktree (same venv, model, settings; --env is
for the current tree only); cells read "before / after". --rss: peak memory under the worst load the default
limits allow: --rss-clients clients POST /embed with --rss-texts texts of ~400 words (truncated to 256 tokens),
one client sends short texts alongside; VmRSS sampled, VmHWM (peak) read, 503s counted (not errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench import wrk
from bench.service import ENGINES, ROOT, cpu_seconds, engine_embedder, model_dir, sentences, service

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CLASSES = {"s": ("short", 8, 32), "p": ("passage", 128, 256)}
WORDS = " ".join(sentences(1728)).split()  # every combination, shuffled: ~31k words
NAN2 = (math.nan, math.nan)


def openai_body(text: str) -> dict:
    return {"model": MODEL, "input": text, "encoding_format": "float"}


def build_pools(model, n: int, seed: int, classes: dict = CLASSES) -> dict[str, list[tuple[str, int]]]:
    """Per class (key: (name, fewest tokens, most tokens)), n (text, tokens) cut from WORDS at random offsets;
    word counts found by bisection."""
    rng, pools = random.Random(seed), {}

    def count(texts: list[str]) -> list[int]:  # tokens incl. special ones; "too many" when truncated
        t = model.tokenize(texts)
        return [10**6 if i in t.over_limit else k for i, k in enumerate(t.lengths)]

    for c, (_, lo, hi) in classes.items():
        targets = np.linspace(lo, hi, n).round().astype(int)
        starts = [rng.randrange(len(WORDS) - hi) for _ in targets]
        text = lambda i, w: " ".join(WORDS[starts[i] : starts[i] + w])  # noqa: E731
        low, high = [1] * n, [hi] * n  # a word is >= 1 token: hi words are always too many
        while any(a < b for a, b in zip(low, high)):
            mid = [(a + b + 1) // 2 for a, b in zip(low, high)]
            for i, tokens in enumerate(count([text(i, w) for i, w in enumerate(mid)])):
                low[i], high[i] = (mid[i], high[i]) if tokens <= targets[i] else (low[i], mid[i] - 1)
        lengths = count([text(i, w) for i, w in enumerate(low)])
        texts = [text(i, w + (tokens < lo)) for i, (w, tokens) in enumerate(zip(low, lengths))]  # >= floor
        pools[c] = list(zip(texts, count(texts)))
        assert all(lo <= t <= hi for _, t in pools[c]), f"{c}: lengths out of [{lo}, {hi}]"
    return pools


def parse_mix(mix: str) -> tuple[int, int]:
    """'90/10' (short/passage % of requests) -> (A, B): A passages in every B requests."""
    short, passage = (int(x) for x in mix.split("/"))
    assert short + passage == 100 and passage >= 0 <= short, mix
    return passage // math.gcd(passage, 100), 100 // math.gcd(passage, 100)


def ideal_batches(pools: dict, a: int, b: int, n: int, budget: int, cap: int) -> list[list[str]]:
    """n texts in the mix's exact proportions, sorted by length, cut into calls of <= cap texts and
    <= budget padded tokens (texts x longest)."""
    nxt, items = Counter(), []
    for m in range(n):
        c = "p" if (m * a) % b < a else "s"
        items.append(pools[c][nxt[c] % len(pools[c])])
        nxt[c] += 1
    batches, cur = [], []
    for text, tokens in sorted(items, key=lambda x: x[1]):
        if cur and (len(cur) >= cap or (len(cur) + 1) * tokens > budget):
            batches.append(cur)
            cur = []
        cur.append(text)
    return [*batches, cur]


def ideal_window(embed, batches: list[list[str]], duration: float, st: dict) -> None:
    """Whole passes over the batches (so the mix's proportions hold) until ``duration`` s have passed."""
    done, t0, cpu0 = 0, time.perf_counter(), cpu_seconds()
    while (elapsed := time.perf_counter() - t0) < duration or not done:
        for batch in batches:
            embed(batch)
            done += len(batch)
    st["texts"] += done
    st["seconds"] += elapsed
    st["cpu"] += cpu_seconds() - cpu0


def wrk_stats() -> dict:
    """Empty totals that wrk_window adds to."""
    return {"seconds": 0.0, "cpu": 0.0, "wrk_cpu": 0.0, "socket_errors": 0,
            **{c: {"ok": 0, "non_200": 0, "statuses": Counter(), "latencies_ms": []} for c in CLASSES}}


def wrk_window(url: str, pid: int, bodies: Path, a: int, b: int, args, st: dict) -> None:
    """One wrk run (bench.wrk.run); adds what completes in [start + warmup, + duration] to ``st``."""
    r = wrk.run(url, bodies, a, b, connections=args.connections, warmup=args.warmup, duration=args.duration,
                pid=pid)
    st["cpu"] += r["server_cpu_s"]
    st["wrk_cpu"] += r["wrk_cpu_s"]
    st["seconds"] += args.duration
    for c in CLASSES:
        for key in ("ok", "non_200", "statuses", "latencies_ms"):
            st[c][key] += Counter(r[c][key]) if key == "statuses" else r[c][key]
    st["socket_errors"] += sum(r["wrk"][k] for k in wrk.SOCKET_ERRORS)
    print(f"  {r['s']['ok']} + {r['p']['ok']} done in the window; idle {wrk.drain(pid):.1f} s later", file=sys.stderr)


def summarize(st: dict, ideal: dict) -> dict:
    sec, out = st["seconds"], {}
    for c, (name, _, _) in [*CLASSES.items(), ("all", ("all", 0, 0))]:
        x = st[c] if c != "all" else {k: st["s"][k] + st["p"][k] for k in ("ok", "non_200", "latencies_ms")}
        p50, p99 = np.percentile(x["latencies_ms"], [50, 99]) if x["latencies_ms"] else NAN2
        out[name] = {"texts_per_s": x["ok"] / sec, "requests_per_s": (x["ok"] + x["non_200"]) / sec,
                     "p50_ms": float(p50), "p99_ms": float(p99), "ok": x["ok"], "non_200": x["non_200"],
                     "statuses": dict(x.get("statuses", st["s"]["statuses"] + st["p"]["statuses"]))}
    ideal_tps = ideal["texts"] / ideal["seconds"]
    return {"classes": out, "seconds": sec, "server_cpu_cores": st["cpu"] / sec,
            "wrk_cpu_cores": st["wrk_cpu"] / sec, "socket_errors": st["socket_errors"],
            "ideal_texts_per_s": ideal_tps, "ideal_cpu_cores": ideal["cpu"] / ideal["seconds"],
            "ratio_to_ideal": out["all"]["texts_per_s"] / ideal_tps}


def status_mb(pid: int, key: str) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def rss_round(url: str, pid: int, big_body: bytes, shorts: list[bytes], args) -> dict:
    """--rss-clients x --rss-requests big /embed requests, one short-text client alongside until they end."""
    peak, stop, head = 0.0, threading.Event(), {"Content-Type": "application/json"}

    def big(_: int) -> Counter:
        statuses = Counter()
        with httpx.Client(base_url=url, timeout=900, headers=head) as c:
            for _ in range(args.rss_requests):
                r = c.post("/embed", content=big_body)
                statuses[f"big {r.status_code}"] += 1
                if r.status_code == 503:  # admission control: honour Retry-After (capped), no retry
                    time.sleep(min(2.0, float(r.headers.get("retry-after", 1))))
        return statuses

    def short() -> tuple[Counter, list[float]]:
        statuses, lat = Counter(), []
        with httpx.Client(base_url=url, timeout=900, headers=head) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                r = c.post("/v1/embeddings", content=shorts[sum(statuses.values()) % len(shorts)])
                statuses[f"short {r.status_code}"] += 1
                lat += [(time.perf_counter() - t0) * 1000] if r.status_code == 200 else []
        return statuses, lat

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.rss_clients + 1) as pool:
        side, bigs = pool.submit(short), [pool.submit(big, i) for i in range(args.rss_clients)]
        while not all(f.done() for f in bigs):  # sample VmRSS while the big requests run
            peak = max(peak, status_mb(pid, "VmRSS"))
            time.sleep(0.02)
        stop.set()
        statuses, short_lat = side.result()
        statuses = sum((f.result() for f in bigs), statuses)
    seconds = time.perf_counter() - t0
    time.sleep(1.0)
    p50, p99 = np.percentile(short_lat, [50, 99]) if short_lat else NAN2
    return {"seconds": seconds, "rss_after_mb": status_mb(pid, "VmRSS"), "hwm_mb": status_mb(pid, "VmHWM"),
            "sampled_peak_mb": peak, "statuses": dict(statuses), "short_p50_ms": p50, "short_p99_ms": p99}


def report(res: dict, labels: list[str], mixes: list[str], rss: dict | None) -> str:
    side = f" ({' / '.join(labels)})" if len(labels) > 1 else ""
    cell = lambda xs, key, fmt: " / ".join(format(key(x), fmt) for x in xs)  # noqa: E731
    lines = [f"| Mix | Class | Requests/s{side} | Texts/s | p50 (ms) | p99 (ms) | non-2xx |",
             "|---|---|---:|---:|---:|---:|---:|"] if mixes else []
    for mix in mixes:
        for cls in ("short", "passage", "all") if parse_mix(mix)[0] else ("short",):
            xs = [res[k][mix]["classes"][cls] for k in labels]
            lines.append(f"| {mix} | {cls} | " + " | ".join(cell(xs, lambda x, k=k: x[k], f) for k, f in (
                ("requests_per_s", ".1f"), ("texts_per_s", ".1f"), ("p50_ms", ".1f"), ("p99_ms", ".1f"),
                ("non_200", "d"))) + " |")
    if mixes:
        lines += ["", f"| Mix | Ideal texts/s | Server texts/s{side} | / ideal (>= 0.8) | short p99 / short-only "
                  "(<= 3) | Server CPU cores | wrk CPU cores | Texts/s per server core | Server CPU s per 1000 "
                  "requests |", "|---|" + "---:|" * 8]
    for mix in mixes:
        xs = [res[k][mix] for k in labels]
        tps = lambda x: x["classes"]["all"]["texts_per_s"]  # noqa: E731
        lines.append(f"| {mix} | {xs[0]['ideal_texts_per_s']:.1f} | {cell(xs, tps, '.1f')} | " + " | ".join(
            cell(xs, lambda x, k=k: x[k], ".2f") for k in ("ratio_to_ideal", "short_p99_ratio",
                                                           "server_cpu_cores", "wrk_cpu_cores"))
            + f" | {cell(xs, lambda x: tps(x) / x['server_cpu_cores'], '.1f')} | "
            + cell(xs, lambda x: 1000 * x["server_cpu_cores"] / x["classes"]["all"]["requests_per_s"], ".1f") + " |")
    if rss:
        n = len(next(iter(rss.values()))["rounds"])
        lines += ["", "| Service | Ready RSS (MB) | RSS / VmHWM before | " + " | ".join(
            f"RSS after round {i + 1}" for i in range(n)) + " | Peak VmHWM (MB) | Sampled peak | Statuses | "
            "Short p50/p99 per round (ms) |", "|---|---:|---:|" + "---:|" * (n + 2) + "---|---|"]
        for k, x in rss.items():
            st = sum((Counter(r["statuses"]) for r in x["rounds"]), Counter())
            lat = "; ".join(f"{r['short_p50_ms']:.0f}/{r['short_p99_ms']:.0f}" for r in x["rounds"])
            lines.append(f"| {k} | {x['ready_mb']:.0f} | {x['before_mb']:.0f} / {x['hwm_before_mb']:.0f} | "
                         + " | ".join(f"{r['rss_after_mb']:.0f}" for r in x["rounds"])
                         + f" | {x['peak_hwm_mb']:.0f} | {max(r['sampled_peak_mb'] for r in x['rounds']):.0f} | "
                         f"{', '.join(f'{s}: {c}' for s, c in sorted(st.items()))} | {lat} |")
    return "\n".join(lines).strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mixed", description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--model-dir", type=Path, help="model directory (default: found/built as the tests do)")
    add("--json", type=Path, help="also write the results as JSON to this file")
    add("--mixes", default="100/0,90/10,50/50", help="short/passage %% of requests, comma-separated ('' = none)")
    add("--duration", type=float, default=15.0, help="seconds of each measured wrk window")
    add("--warmup", type=float, default=2.0, help="seconds of load before each window (same wrk run)")
    add("--rounds", type=int, default=2, help="interleaved rounds (one window per service and mix in each)")
    add("--connections", type=int, default=32, help="wrk threads = connections")
    add("--ideal-duration", type=float, default=5.0, help="in-process s per mix per round (>= 1 pass)")
    add("--ideal-texts", type=int, default=160, help="ideal: texts of the mix in one pass")
    add("--batch-tokens", type=int, default=4096, help="ideal: most padded tokens per call")
    add("--batch", type=int, default=32, help="ideal: most texts per call")
    add("--pool", type=int, default=256, help="texts per class")
    add("--baseline", metavar="REF", help="also serve this git ref (before) next to the current tree (after)")
    add("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env of the current tree's service")
    add("--compare", metavar="KEY=VALUE", help="also serve the current tree with this setting (e.g. spinning on)")
    add("--rss", action="store_true", help="run the peak-RSS scenario after the mixes")
    add("--rss-clients", type=int, default=3, help="concurrent clients sending big requests")
    add("--rss-requests", type=int, default=1, help="big requests per client per round")
    add("--rss-texts", type=int, default=256, help="texts per big request (max inputs)")
    add("--rss-rounds", type=int, default=3, help="rounds of the RSS scenario (RSS is read after each)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (services, worktree) on SIGTERM too
    mixes = [m for m in args.mixes.split(",") if m]
    path = args.model_dir or model_dir()
    print(f"model dir {path}; {os.cpu_count()} CPUs; loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr)
    from app.config import Settings
    from app.model import EmbeddingModel

    (tokenizer := EmbeddingModel(Settings(model_dir=path))).load()
    pools = build_pools(tokenizer, args.pool, seed=1)
    current_env = dict(kv.split("=", 1) for kv in args.env)
    embed = engine_embedder(path, current_env.get("EMBEDDER_ENGINE", ENGINES[0]))
    shares = {m: parse_mix(m) for m in mixes}
    batches = {m: ideal_batches(pools, a, b, b * math.ceil(args.ideal_texts / b), args.batch_tokens, args.batch)
               for m, (a, b) in shares.items()}
    labels = ["before", "after"] if args.baseline else ["current"]
    if args.compare:
        labels.append(args.compare)
    ideal = {m: {"texts": 0, "seconds": 0.0, "cpu": 0.0} for m in mixes}
    stats = {k: {m: wrk_stats() for m in mixes} for k in labels}
    results, rss = {k: {} for k in labels}, None
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:  # worktree gone before tmp
        bodies = Path(tmp) / "bodies.txt"
        bodies.write_text("".join(f"{c} {json.dumps(openai_body(t))}\n" for c, pl in pools.items() for t, _ in pl))
        trees = {"current": (ROOT, dict(kv.split("=", 1) for kv in args.env))}
        trees["after"] = trees["current"]
        if args.compare:
            trees[args.compare] = (ROOT, trees["current"][1] | dict([args.compare.split("=", 1)]))
        if args.baseline:
            wt = Path(tmp) / "baseline"
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "add", "--detach", str(wt), args.baseline], check=True, capture_output=True)
            stack.callback(subprocess.run, [*git, "remove", "--force", str(wt)], check=False)
            trees["before"] = (wt, {})
        services = {k: stack.enter_context(service(path, None, cwd=trees[k][0], env=trees[k][1]))
                    for k in labels}
        ready = {k: status_mb(pid, "VmRSS") for k, (_, pid) in services.items()}
        for r in range(args.rounds if mixes else 0):
            for mix, (a, b) in shares.items():
                for k in labels if r % 2 == 0 else labels[::-1]:
                    print(f"round {r + 1}/{args.rounds}: {mix} {k}", file=sys.stderr)
                    wrk_window(*services[k], bodies, a, b, args, stats[k][mix])
                ideal_window(embed, batches[mix], args.ideal_duration, ideal[mix])
        for k in labels:
            results[k] = {mix: summarize(stats[k][mix], ideal[mix]) for mix in mixes}
            base = results[k]["100/0"]["classes"]["short"]["p99_ms"] if "100/0" in mixes else math.nan
            for x in results[k].values():
                x["short_p99_ratio"] = x["classes"]["short"]["p99_ms"] / base
        if args.rss:
            big_body = json.dumps({"inputs": [" ".join(WORDS[i * 37 : i * 37 + 400])
                                              for i in range(args.rss_texts)]}).encode()
            shorts = [json.dumps(openai_body(t)).encode() for t, _ in pools["s"]]
            rss = {k: {"ready_mb": ready[k], "before_mb": status_mb(pid, "VmRSS"),
                       "hwm_before_mb": status_mb(pid, "VmHWM"), "rounds": []} for k, (_, pid) in services.items()}
            for r in range(args.rss_rounds):
                for k in labels if r % 2 == 0 else labels[::-1]:
                    print(f"rss round {r + 1}/{args.rss_rounds}: {k}", file=sys.stderr)
                    rss[k]["rounds"].append(rss_round(*services[k], big_body, shorts, args))
            for k, (_, pid) in services.items():
                rss[k]["peak_hwm_mb"] = status_mb(pid, "VmHWM")
    print(report(results, labels, mixes, rss))
    if args.json:
        lengths = {CLASSES[c][0]: [t for _, t in pl] for c, pl in pools.items()}
        body = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()} | {
            "model_dir": str(path)}, "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()},
            "token_lengths": lengths, "results": results, "rss": rss}
        args.json.write_text(json.dumps(body, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
