"""The worst load the default settings admit, against a running service, then its memory against a limit.

Every client sends requests of EMBEDDER_MAX_INPUTS texts of EMBEDDER_MAX_TEXT_CHARS characters (the
defaults) at once, again after each 503 (admission control), until each has been answered once. The
service must answer every request with 200 or 503, stay up (/health, /ready), and its container's memory
peak (``embedder_memory_peak_bytes``, the cgroup's count) must stay under the limit.

    python tests/memory/worst_load.py --url http://host:8000 --limit 896Mi [--expect-cgroup-limit]

Needs only the standard library and the app package (for the defaults): it runs in the test runner and in
the image itself (which has no HTTP client library), from a second container on the service's network.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from app.config import Settings

#: Kubernetes' suffixes ("896Mi", "1G") and docker's (lowercase, binary: "896m" is 896 MiB).
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
         "K": 10**3, "M": 10**6, "G": 10**9}
#: Concurrent clients: more than admission lets in at once (one full request's tokens), so that request bodies
#: wait and are refused alongside the running one.
CLIENTS = 6
WORDS = "the model reads long passages about rivers mountains cities trains music history science".split()


def limit_bytes(quantity: str | int) -> int:
    """A Kubernetes or Compose memory quantity, in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]i?|)", str(quantity).strip())
    if not match:
        raise ValueError(f"unreadable memory quantity {quantity!r}")
    number, unit = match.groups()
    return int(number) * UNITS[unit]


def body(seed: int) -> dict:
    defaults = Settings.model_fields
    texts, chars = defaults["max_inputs"].default, defaults["max_text_chars"].default
    rng = random.Random(seed)
    return {"inputs": [(" ".join(rng.choices(WORDS, k=chars // 4)))[:chars] for _ in range(texts)]}


def request(url: str, data: bytes | None = None, timeout: float = 600) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, or of a JSON POST when ``data`` is given; HTTP errors included."""
    headers = {"Content-Type": "application/json"} if data is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def client(url: str, seed: int, deadline: float) -> list[int]:
    """One client: its statuses until it is answered (200), waiting Retry-After after each 503."""
    payload = body(seed)
    data, statuses = json.dumps(payload).encode(), []
    while time.monotonic() < deadline:
        status, headers, answer = request(f"{url}/embed", data, timeout=deadline - time.monotonic())
        statuses.append(status)
        if status == 200:
            assert len(json.loads(answer)["embeddings"]) == len(payload["inputs"])
            return statuses
        assert status == 503, f"{status}: {answer[:300]!r}"
        time.sleep(float(headers.get("Retry-After", "1")))  # as a well-behaved client does
    raise AssertionError(f"client {seed} was never answered within the deadline")


def metric(url: str, name: str) -> float:
    text = request(f"{url}/metrics")[2].decode()
    (value,) = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def run(url: str, limit: int, clients: int, timeout_s: float, expect_cgroup_limit: bool) -> str:
    assert request(f"{url}/ready")[0] == 200, "the service is not ready"
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(lambda seed: client(url, seed, started + timeout_s), range(clients)))
    seconds = time.monotonic() - started
    statuses = [status for run in runs for status in run]
    for probe in ("/health", "/ready"):
        assert request(f"{url}{probe}")[0] == 200, f"{probe} after the load"
    peak, cgroup_limit = metric(url, "embedder_memory_peak_bytes"), metric(url, "embedder_memory_limit_bytes")
    if expect_cgroup_limit:
        assert cgroup_limit == limit, f"the container's cgroup limit is {cgroup_limit}, not the {limit} expected"
    assert peak == peak, "embedder_memory_peak_bytes is NaN: this kernel reports no memory peak"
    assert peak <= limit, f"memory peak {peak / 2**20:.0f} MiB is over the limit {limit / 2**20:.0f} MiB"
    return (
        f"worst admitted load: {clients} clients x {len(body(0)['inputs'])} texts of "
        f"{Settings.model_fields['max_text_chars'].default} chars, {statuses.count(200)} answered, "
        f"{statuses.count(503)} x 503, {seconds:.0f} s; memory peak {peak / 2**20:.0f} MiB "
        f"<= limit {limit / 2**20:.0f} MiB ({100 * peak / limit:.0f} %)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--limit", required=True, help="memory limit, e.g. 896Mi")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--expect-cgroup-limit", action="store_true", help="the container runs under --limit")
    args = parser.parse_args(argv)
    try:
        print(run(args.url, limit_bytes(args.limit), args.clients, args.timeout, args.expect_cgroup_limit))
    except (AssertionError, OSError) as e:
        print(f"memory check FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
