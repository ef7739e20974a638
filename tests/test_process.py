"""Process-level behaviour with a real ``python -m app``: readiness, SIGTERM, settings, logs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time

import httpx
import pytest
from svc_support import ROOT, lifespan_running, make_settings, server_process

from app.main import create_app
from app.model import EmbeddingModel

LONG = "the service keeps answering while the model works through long inputs " * 30


def _in_flight(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    m = re.search(r"^embedder_http_requests_in_flight (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def test_ready_is_503_until_warm_then_200(model_dir, tmp_path):
    with server_process(model_dir, tmp_path / "server.log") as server:
        seen = server.wait_ready()
        assert seen[-1] == 200
        assert 503 in seen, f"never saw 503 before ready: {seen}"
        assert set(seen) <= {0, 503, 200}
        assert (httpx.get(f"{server.base_url}/health")).status_code == 200
        records = server.log_records()
    events = [r["message"] for r in records]
    assert events.index("model loaded") < events.index("ready")


async def test_ready_waits_for_warm_up(model_dir, monkeypatch):
    """In-process: /ready (and /embed) say 503 with a reason while warm-up is held."""
    gate = threading.Event()
    original = EmbeddingModel.warm_up

    def held_warm_up(self):
        gate.wait(30)
        original(self)

    monkeypatch.setattr(EmbeddingModel, "warm_up", held_warm_up)
    app = create_app(make_settings(model_dir))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c, lifespan_running(app):
        assert (await c.get("/health")).status_code == 200
        for _ in range(500):
            r = await c.get("/ready")
            if "warm-up" in (r.json()["reason"] or ""):
                break
            await asyncio.sleep(0.01)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        body = r.json()
        assert body["ready"] is False and "warm-up" in body["reason"]
        assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        early = await c.post("/embed", json={"inputs": "too early"})
        assert early.status_code == 503 and "not ready" in early.json()["detail"]
        gate.set()
        for _ in range(500):
            r = await c.get("/ready")
            if r.status_code == 200:
                break
            await asyncio.sleep(0.01)
        assert r.status_code == 200 and r.json()["ready"] is True
        assert (await c.post("/embed", json={"inputs": "now"})).status_code == 200


def test_sigterm_finishes_admitted_requests_and_exits_0(model_dir, tmp_path):
    """After SIGTERM every admitted request completes: the one running and the one queued behind it.
    The exit comes when that work is done, not at the drain timeout (no absolute time: on a loaded
    machine the work takes longer, but still far less than the timeout)."""
    graceful = 60.0
    env = {"EMBEDDER_GRACEFUL_TIMEOUT_S": str(graceful), "EMBEDDER_MAX_BATCH": "4", "EMBEDDER_SHUTDOWN_DELAY_S": "0"}
    with server_process(model_dir, tmp_path / "server.log", **env) as server:
        server.wait_ready()
        url = f"{server.base_url}/embed"
        sizes = (24, 8)  # the second request is admitted while the first one runs (4 texts per call)
        result: dict = {}

        def call(k: int) -> None:
            body = {"inputs": [f"{k} {i} {LONG}" for i in range(sizes[k])]}
            result[k] = httpx.post(url, json=body, timeout=120)

        workers = [threading.Thread(target=call, args=(k,)) for k in range(2)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while _in_flight(server.base_url) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)  # the /metrics request itself is 1
        assert server.proc.poll() is None
        server.terminate()
        sent = time.perf_counter()
        code = server.proc.wait(timeout=graceful + 30)
        took = time.perf_counter() - sent
        for worker in workers:
            worker.join(30)
        logs = server.logs()
    for k, n in enumerate(sizes):
        response = result[k]
        assert response.status_code == 200, response.text
        assert len(response.json()["embeddings"]) == n
    assert code == 0, logs
    assert took < graceful / 2, f"exit took {took:.2f}s after SIGTERM: waited for the drain timeout"


def test_stops_accepting_after_sigterm_without_a_delay(model_dir, tmp_path):
    with server_process(model_dir, tmp_path / "server.log", EMBEDDER_SHUTDOWN_DELAY_S="0") as server:
        server.wait_ready()
        server.terminate()
        assert server.proc.wait(timeout=5) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base_url}/health", timeout=2)


def test_sigterm_flips_ready_and_serves_every_request_of_the_delay(model_dir, tmp_path):
    """Rollouts: after SIGTERM /ready is 503 at once, while requests on new and kept-alive
    connections are all answered for the whole delay; then the drain, exit 0, refused."""
    delay = 3.0
    with server_process(model_dir, tmp_path / "server.log", EMBEDDER_SHUTDOWN_DELAY_S=str(delay)) as server:
        server.wait_ready()
        statuses: list[int] = []
        stop = threading.Event()

        def client(k: int) -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as c:  # keep-alive
                while not stop.is_set():
                    r = c.post("/embed", json={"inputs": [f"client {k} during the grace"]})
                    statuses.append(r.status_code)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        while len(statuses) < 8:
            time.sleep(0.01)
        server.terminate()
        sent = time.monotonic()
        ready = httpx.get(f"{server.base_url}/ready", timeout=5)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert httpx.get(f"{server.base_url}/health", timeout=5).status_code == 200
        before = len(statuses)
        fresh = httpx.post(f"{server.base_url}/embed", json={"inputs": ["new connection"]}, timeout=30)
        assert fresh.status_code == 200
        time.sleep(delay / 2)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(statuses) > before and set(statuses) == {200}, statuses  # none lost, none refused
        code = server.proc.wait(timeout=60)
        took = time.monotonic() - sent
        assert code == 0 and took >= delay * 0.9, (code, took)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base_url}/health", timeout=2)


def test_a_second_signal_skips_the_delay(model_dir, tmp_path):
    with server_process(model_dir, tmp_path / "server.log", EMBEDDER_SHUTDOWN_DELAY_S="120") as server:
        server.wait_ready()
        server.terminate()
        assert httpx.get(f"{server.base_url}/ready", timeout=5).status_code == 503
        server.terminate()
        assert server.proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("env", "needles"),
    [
        ({"EMBEDDER_VARIANT": "int8"}, ["EMBEDDER_VARIANT", "int8 variant was removed", "unset it"]),
        ({"EMBEDDER_PORT": "http"}, ["EMBEDDER_PORT", "integer"]),
        ({"EMBEDDER_MAX_BATCH": "0"}, ["EMBEDDER_MAX_BATCH", "greater than or equal to 1"]),
        ({"EMBEDDER_MODEL_DIR": "/nonexistent/model"}, ["/nonexistent/model", "python -m app.export"]),
    ],
)
def test_invalid_settings_fail_at_start(model_dir, env, needles):
    full = {"EMBEDDER_MODEL_DIR": str(model_dir), **env, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    logged = json.loads(proc.stdout.strip().splitlines()[-1])  # also one JSON log line
    assert logged["level"] == "ERROR" and "invalid settings" in logged["message"]


def test_logs_are_json_lines_with_access_log(tmp_path, model_dir):
    with server_process(model_dir, tmp_path / "server.log") as server:
        server.wait_ready()
        httpx.post(f"{server.base_url}/embed", json={"inputs": "log me"})
        httpx.post(f"{server.base_url}/embed", json={"inputs": []})
        time.sleep(0.2)
        lines = [line for line in server.logs().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every stdout line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    access = [r for r in records if r["logger"] == "app.access" and r["path"] == "/embed"]
    assert [r["status"] for r in access] == [200, 422]
    assert all(r["method"] == "POST" and r["duration_ms"] > 0 for r in access)


def test_service_does_not_import_torch_or_transformers(model_dir):
    code = (
        "import sys; from app.config import Settings; from app.main import create_app; "
        f"import app.__main__; create_app(Settings(model_dir={str(model_dir)!r})); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'sentence_transformers')); print(bad); sys.exit(bool(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
