"""Fixtures and helpers for the service tests (imported by the test modules).

The model directory comes from the ``model_dir`` session fixture of tests/conftest.py.
Process-level helpers start a real ``python -m app``; set EMBEDDER_BASE_URL to run the
tests that only need *a* server against an already running one (e.g. a container).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0


# --- in-process -------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def lifespan_running(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's lifespan in its own task (anyio cancel scopes stay in one task)."""
    started, stop = asyncio.Event(), asyncio.Event()
    failure: list[BaseException] = []

    async def runner() -> None:
        try:
            async with app.router.lifespan_context(app):
                started.set()
                await stop.wait()
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise

    task = asyncio.create_task(runner(), name="lifespan")
    await started.wait()
    if failure:
        raise failure[0]
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def running_app(app: FastAPI, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an httpx client talking ASGI to it."""
    async with lifespan_running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=TIMEOUT
        ) as client:
            if wait_ready:
                await wait_until_ready(client)
            yield client


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get("/ready")
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 503, r.text
        assert r.json()["status"] != "failed", r.text
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after {timeout}s: {r.text}")
        await asyncio.sleep(0.02)


def make_settings(model_dir: Path, **overrides) -> Settings:
    return Settings(model_dir=model_dir, **overrides)


@pytest_asyncio.fixture(scope="session")
async def asgi_app(model_dir: Path) -> AsyncIterator[FastAPI]:
    """The fp32 app with default limits, lifespan running and model ready."""
    application = create_app(make_settings(model_dir))
    async with running_app(application):
        yield application


@pytest_asyncio.fixture(scope="session")
async def client(asgi_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=asgi_app), base_url="http://testserver", timeout=TIMEOUT
    ) as c:
        yield c


# --- real processes -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real ``python -m app`` on a free loopback port; stdout (JSON logs) to a file."""

    def __init__(self, model_dir: Path, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "EMBEDDER_MODEL_DIR": str(model_dir),
            "EMBEDDER_HOST": "127.0.0.1",
            "EMBEDDER_PORT": str(self.port),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout: float = TIMEOUT) -> list[int]:
        """Poll /ready until 200; returns every status seen (connection errors as 0)."""
        seen: list[int] = []
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=5) as c:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.logs()
                try:
                    status = c.get("/ready").status_code
                except httpx.TransportError:
                    status = 0
                seen.append(status)
                if status == 200:
                    return seen
                time.sleep(0.005)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        return [json.loads(line) for line in self.logs().splitlines() if line.strip()]

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def server_process(model_dir: Path, log_path: Path, **env: str) -> Iterator[ServerProcess]:
    server = ServerProcess(model_dir, log_path, **env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server_url(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running service: EMBEDDER_BASE_URL if set, else a real subprocess."""
    external = os.environ.get("EMBEDDER_BASE_URL")
    if external:
        yield external.rstrip("/")
        return
    log = tmp_path_factory.mktemp("server") / "server.log"
    with server_process(model_dir, log) as server:
        server.wait_ready()
        yield server.base_url
