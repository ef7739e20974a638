"""Memory and speed of ONNX Runtime per call budget and arena setting, against app.sizing's formula.

Run from the repository root: ``uv run python -m bench.memory [--budgets 1024,2048,4096,8192]``.

Each configuration runs in a fresh process (peak RSS is per process): the service's own
``EmbeddingModel`` loads with ``EMBEDDER_ORT_ARENA`` on or off, then runs rounds of
max-length texts in calls of ``budget`` padded tokens (the worst a call can be), with calls of
short texts in between. Reported: RSS when loaded, peak RSS (VmHWM), RSS after the last
round (does it come back, does it creep), padded tokens per second, and what app.sizing
predicts for the call (``call_mb``) next to the measured peak minus loaded RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def child(model_dir: str, budget: int, arena: bool, rounds: int) -> dict:
    """One configuration, in this process."""
    from app.config import Settings
    from app.model import EmbeddingModel
    from app.sizing import ModelShape, estimate

    settings = Settings(model_dir=Path(model_dir), ort_arena=arena, max_batch=1024, max_batch_tokens=budget)
    model = EmbeddingModel(settings)
    model.load()
    model.warm_up()
    loaded = _status_mb("VmRSS")
    seq = model.info.max_seq_length
    long_ids = model.tokenize([f"passage {i} " + "the model reads long inputs " * seq for i in range(256)]).ids
    short_ids = model.tokenize([f"query {i} about the weather" for i in range(64)]).ids
    per_call = max(1, budget // seq)
    after, tokens, seconds = [], 0, 0.0
    for r in range(rounds):
        started = time.perf_counter()
        for i in range(0, len(long_ids), per_call):
            batch = long_ids[i : i + per_call]
            model.run(batch)
            tokens += len(batch) * seq
        for i in range(0, len(short_ids), 32):
            model.run(short_ids[i : i + 32])
            tokens += 32 * max(map(len, short_ids[i : i + 32]))
        if r:  # the first round grows the arena: not timed
            seconds += time.perf_counter() - started
        else:
            tokens = 0
        after.append(round(_status_mb("VmRSS")))
    predicted = estimate(settings, ModelShape.read(settings))
    return {
        "budget": budget,
        "arena": arena,
        "loaded_mb": round(loaded),
        "peak_mb": round(_status_mb("VmHWM")),
        "after_rounds_mb": after,
        "tokens_per_s": round(tokens / seconds) if seconds else None,
        "call_mb_measured": round(_status_mb("VmHWM") - loaded),
        "call_mb_predicted": round(predicted.call_mb),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", default="1024,2048,4096,8192", help="padded tokens per call, comma-separated")
    p.add_argument("--arena", default="on,off", help="arena settings to measure: on,off")
    p.add_argument("--rounds", type=int, default=4, help="rounds per configuration (first one untimed)")
    p.add_argument("--model-dir", type=Path, help="model directory (default: found/built as the tests do)")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--child", nargs=3, metavar=("MODEL_DIR", "BUDGET", "ARENA"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        model_dir, budget, arena = args.child
        print(json.dumps(child(model_dir, int(budget), arena == "on", args.rounds)))
        return 0

    from bench.service import model_dir as find_model_dir

    path = args.model_dir or find_model_dir()
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        for arena in args.arena.split(","):
            cmd = [sys.executable, "-m", "bench.memory", "--rounds", str(args.rounds),
                   "--child", str(path), str(budget), arena]
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print("| budget (padded tokens) | arena | loaded MB | peak MB | RSS after each round MB | tokens/s "
          "| call MB measured | call MB predicted |")
    print("|---:|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['budget']} | {'on' if r['arena'] else 'off'} | {r['loaded_mb']} | {r['peak_mb']} "
              f"| {', '.join(map(str, r['after_rounds_mb']))} | {r['tokens_per_s']} | {r['call_mb_measured']} "
              f"| {r['call_mb_predicted']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
