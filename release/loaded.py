"""What the service loads at run time: ``python loaded.py --out FILE`` (standard library only; run in the stage
that holds the base image, the virtualenv, the app and the model, with the image's environment).

It starts the service (``python -m app``) as the image does, waits for /ready (load, warm-up, accuracy check,
calibration, MCP), sends one request to each API (/embed, /v1/embeddings, an MCP tool list), and records the
files mapped into the process then: the shared objects it opened at run time (OpenVINO's plugin and frontend,
TBB, whatever NSS and glibc pull in), which no NEEDED entry names. Then it stops the service with SIGTERM, as
an orchestrator would. Also recorded: the interpreter's standard-library directories, from the service's own
interpreter. The minimal root filesystem (release/rootfs.py) ships what this finds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

PORT = 8765
STDLIB_PATHS = "import json, sysconfig; print(json.dumps(sorted({sysconfig.get_path(n) for n in ('stdlib', 'platstdlib')})))"


def call(path: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", data=data,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def wait_ready(proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} before it was ready")
        try:
            call("/ready", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the service was not ready within {seconds} s")


def exercise() -> None:
    call("/embed", {"inputs": ["what the service loads"]})
    model = json.loads(call("/v1/models"))["data"][0]["id"]
    call("/v1/embeddings", {"input": ["what the service loads"], "model": model})
    mcp = {"Accept": "application/json, text/event-stream"}
    call("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "loaded", "version": "1"}}}, mcp)


def mapped(pid: int) -> list[str]:
    """Files mapped into ``pid`` (its shared objects, the interpreter, mapped data files)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                found.add(fields[5].strip().removesuffix(" (deleted)"))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    a = parser.parse_args(argv)
    env = {**os.environ, "EMBEDDER_PORT": str(PORT)}
    stdlib = json.loads(subprocess.run([sys.executable, "-c", STDLIB_PATHS], check=True, capture_output=True,
                                       text=True).stdout)
    proc = subprocess.Popen([sys.executable, "-m", "app"], env=env)
    try:
        wait_ready(proc)
        exercise()
        files = mapped(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    if code != 0:
        raise SystemExit(f"the service exited with {code} on SIGTERM")
    with open(a.out, "w") as out:
        json.dump({"executable": sys.executable, "stdlib": stdlib, "mapped": files}, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
