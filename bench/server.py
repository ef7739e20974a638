"""A server process for the benchmarks: started on a free loopback port, ready when a path answers 200,
stopped with SIGTERM (killed after 15 s). Our own service (bench.service.service) and TEI (bench.peer) alike."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """How to start one server: ``{port}`` in ``argv`` and ``env`` values becomes the free port it gets. A
    server with ``url`` is already running: nothing to start or stop."""
    name: str
    ready_path: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    url: str = ""


@dataclass
class Running:
    url: str
    pid: int | None
    ready_s: float | None  # spawn to the first 200 from ready_path (None: not started here)


@contextlib.contextmanager
def started(server: Server, timeout: float = 120.0) -> Iterator[Running]:
    """The server up and ready; stopped on exit. Its output is kept, and shown when it does not get ready."""
    if server.url:
        yield Running(server.url, None, None)
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **{k: v.replace("{port}", str(port)) for k, v in server.env.items()}}
    argv = [a.replace("{port}", str(port)) for a in server.argv]
    with tempfile.TemporaryFile() as log, httpx.Client(timeout=2) as client:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=server.cwd, env=env, stdout=log, stderr=log)
        try:
            while True:
                if proc.poll() is not None or time.monotonic() > t0 + timeout:
                    log.seek(0)
                    raise RuntimeError(f"{server.name} not ready within {timeout} s ({shlex.join(argv)}):\n"
                                       + log.read().decode(errors="replace")[-4000:])
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url + server.ready_path).status_code == 200:
                        break
                time.sleep(0.005)
            yield Running(url, proc.pid, time.monotonic() - t0)
        finally:
            proc.terminate()  # SIGTERM: graceful shutdown
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
