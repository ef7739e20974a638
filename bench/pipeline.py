"""Pipeline benchmark: build times against the floor, image size per engine, cold start, warm test.

    python -m bench.pipeline [--cold-reset "SHELL COMMAND" [--base-ref REF@sha256:… ] [--cold-only]] [--json out.json]

Run from the repository root with the Dagger CLI (and Docker for the size / start-up figures). Everything is
measured in ONE run, so the ratios compare like with like on a noisy machine:
- floor: `dagger call base-image` (module load + source upload + a cached function, nothing built);
- cold build: `dagger call build` after --cold-reset has emptied the engine's cache (skipped without it; e.g.
  `docker rm -f dagger-engine && docker volume rm dagger-engine-state && ../shared/dagger-local/up`);
- cold build from a published base: `dagger call --base-ref REF build` after --cold-reset (with --base-ref; the
  base must live in a registry that the reset leaves alone: what a fresh CI runner with `publish-base`'s output
  does); --cold-only stops after the cold figures;
- no-op rebuild: `dagger call build` again; code change: the same after a one-line change in app/ (reverted);
- image size per engine (`docker image inspect` Size after `docker load` of `build export`);
- `docker run` to the first 200 from /ready; `dagger call test` warm.
Targets (from the pipeline issue): no-op <= 1.3x floor, code change <= 2x floor, fp32 image <= 300 MB,
cold start <= 2 s, cold build <= 234 s.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.service import ENGINES

CHANGED = Path("app/main.py")


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def dagger(*args: str) -> float:
    return timed("dagger", "call", *args)


def code_change_build() -> float:
    original = CHANGED.read_text()
    try:
        CHANGED.write_text(original + f"\n# benchmark change {time.time_ns()}\n")
        return dagger("build")
    finally:
        CHANGED.write_text(original)


def docker_figures(engine: str, tmp: Path) -> dict:
    tar = tmp / f"{engine}.tar"
    dagger(f"--engine={engine}", "build", "export", f"--path={tar}")
    loaded = subprocess.run(["docker", "load", "-q", "-i", str(tar)], check=True, capture_output=True, text=True)
    image = loaded.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", image],
                              check=True, capture_output=True, text=True).stdout)
    start = time.perf_counter()
    cid = subprocess.run(["docker", "run", "-d", "-p", "127.0.0.1::8000", image],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        port = subprocess.run(["docker", "port", cid, "8000/tcp"], check=True, capture_output=True,
                              text=True).stdout.split(":")[-1].strip()
        while time.perf_counter() - start < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        ready = time.perf_counter() - start
    finally:
        subprocess.run(["docker", "rm", "-f", cid], stdout=subprocess.DEVNULL, check=False)
    return {"size_mb": size / 1e6, "run_to_ready_s": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-reset", help="shell command that empties the engine's cache (enables cold build)")
    parser.add_argument("--base-ref", help="a base from `dagger call publish-base` (needs --cold-reset)")
    parser.add_argument("--cold-only", action="store_true", help="only the cold build figures")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    r: dict = {}
    if args.cold_reset and args.base_ref:
        subprocess.run(args.cold_reset, shell=True, check=True)
        r["cold_build_from_base_s"] = dagger(f"--base-ref={args.base_ref}", "build")
    if args.cold_reset:
        subprocess.run(args.cold_reset, shell=True, check=True)
        r["cold_build_s"] = dagger("build")
    if args.cold_only:
        return report(r, args.json)
    dagger("build")  # make sure the build is cached before the warm figures
    dagger("base-image")
    r["floor_s"] = dagger("base-image")
    r["noop_build_s"] = dagger("build")
    r["code_change_build_s"] = code_change_build()
    dagger("build")  # back to the committed code
    if shutil.which("docker"):
        with tempfile.TemporaryDirectory() as tmp:
            for engine in ENGINES:
                r[engine] = docker_figures(engine.upper(), Path(tmp))
    dagger("test")
    r["test_warm_s"] = dagger("test")
    report(r, args.json)


def report(r: dict, json_path: Path | None) -> None:
    rows = []
    if "cold_build_s" in r:
        rows.append(("cold build", f"{r['cold_build_s']:.0f} s", "<= 234 s"))
    if "cold_build_from_base_s" in r:
        ratio = f" ({r['cold_build_from_base_s'] / r['cold_build_s']:.2f}x cold build)" if "cold_build_s" in r else ""
        rows.append(("cold build from published base", f"{r['cold_build_from_base_s']:.0f} s{ratio}", ""))
    if "floor_s" not in r:
        return print_rows(rows, r, json_path)
    floor = r["floor_s"]
    rows.append(("floor (cached trivial call)", f"{floor:.1f} s", ""))
    rows += [
        ("no-op rebuild", f"{r['noop_build_s']:.1f} s ({r['noop_build_s'] / floor:.2f}x floor)", "<= 1.3x"),
        ("one-line app change", f"{r['code_change_build_s']:.1f} s ({r['code_change_build_s'] / floor:.2f}x)",
         "<= 2x"),
    ]
    for engine in ENGINES:
        if engine in r:
            rows.append((f"image size {engine}", f"{r[engine]['size_mb']:.0f} MB", "<= 451 MB"))
            rows.append((f"docker run to /ready {engine}", f"{r[engine]['run_to_ready_s']:.2f} s", "<= 2 s"))
    rows.append(("dagger call test (warm)", f"{r['test_warm_s']:.0f} s", ""))
    print_rows(rows, r, json_path)


def print_rows(rows: list[tuple[str, str, str]], r: dict, json_path: Path | None) -> None:
    print("| measure | value | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if json_path:
        json_path.write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
