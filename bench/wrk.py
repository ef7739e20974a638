"""One wrk run of bench/mixed.lua against a server, with the server's CPU over the measured window.

Shared by the wrk benchmarks (bench.mixed, bench.peer, bench.cache, bench.quota): the script's protocol
(bodies file, A/B mix, window, stride) is documented in bench/mixed.lua.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path

from bench.service import cpu_seconds

LUA = Path(__file__).with_name("mixed.lua")
#: Socket errors wrk counts (per run, all threads).
SOCKET_ERRORS = ("connect", "read", "write", "timeout")


def parse(stdout: str) -> dict:
    """The ``MIXED {json}`` line that bench/mixed.lua's done() prints."""
    line = next((x for x in stdout.splitlines() if x.startswith("MIXED ")), None)
    if line is None:
        raise ValueError(f"wrk printed no MIXED line (is wrk built with LuaJIT?):\n{stdout}")
    return json.loads(line[6:])


def run(url: str, bodies: Path, a: int, b: int, *, connections: int, warmup: float, duration: float,
        pid: int | None = None, timeout_s: float = 120.0) -> dict:
    """``connections`` closed-loop clients for ``warmup`` + ``duration`` s; only responses completing in the
    last ``duration`` s count. Returns the script's result plus the CPU seconds of the server (``pid``;
    None without one) and of wrk over the window."""
    start = time.monotonic() + warmup
    end = start + duration
    seconds = math.ceil(warmup + duration) + 1
    cmd = ["wrk", f"-t{connections}", f"-c{connections}", f"-d{seconds}s", "--timeout", f"{timeout_s:g}s",
           "-s", str(LUA), url, "--", str(bodies), str(a), str(b), f"{start:.6f}", f"{end:.6f}", str(connections)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(max(0.0, start - time.monotonic()))
    server = cpu_seconds(pid) if pid else math.nan
    wrk = cpu_seconds(proc.pid)
    time.sleep(max(0.0, end - time.monotonic()))
    server = cpu_seconds(pid) - server if pid else None
    wrk = cpu_seconds(proc.pid) - wrk
    out, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err}\n{out}")
    return {**parse(out), "server_cpu_s": server, "wrk_cpu_s": wrk, "window_s": duration}


def drain(pid: int, timeout: float = 300.0) -> float:
    """Wait until the server is idle: wrk drops the requests in flight when it stops, the server may not."""
    t0 = time.monotonic()
    while time.monotonic() < t0 + timeout:
        cpu0 = cpu_seconds(pid)
        time.sleep(0.3)
        if cpu_seconds(pid) - cpu0 <= 0.02:
            break
    return time.monotonic() - t0
