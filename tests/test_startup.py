"""Start-up: what the web stack imports, and what /ready waits for besides the model (app.startup,
app.mcp_mount)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import httpx
import pytest
from mcp import Client
from svc_support import ROOT, lifespan_running, make_settings, wait_until_ready

import app.mcp_mount
from app.main import create_app


def test_the_web_stack_imports_neither_redis_nor_the_mcp_sdk(model_dir):
    """Both cost start-up time: redis loads only with a cache URL, the MCP SDK on a thread once serving."""
    code = (
        "import json, sys\n"
        "from app.config import Settings\n"
        "from app.main import create_app\n"
        f"create_app(Settings(model_dir={str(model_dir)!r}))\n"
        "print(json.dumps([m for m in ('redis', 'mcp', 'openvino', 'onnxruntime') if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


async def test_ready_waits_for_the_mcp_server_then_mcp_answers(model_dir, monkeypatch):
    release = threading.Event()
    build = app.mcp_mount._build

    def slow_build(service):
        assert release.wait(60)
        return build(service)

    monkeypatch.setattr(app.mcp_mount, "_build", slow_build)
    application = create_app(make_settings(model_dir))
    async with lifespan_running(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            while (body := (await c.get("/ready")).json())["reason"] != "MCP server loading":
                assert body["status"] in ("starting", "loading"), body
                await asyncio.sleep(0.02)
            assert (await c.get("/health")).status_code == 200
            release.set()
            await wait_until_ready(c)
        async with Client(application.state.mcp) as mcp:
            tools = {t.name for t in (await mcp.list_tools()).tools}
    assert {"embed", "similarity"} <= tools


async def test_an_mcp_server_that_fails_to_load_keeps_ready_503_with_the_reason(model_dir, monkeypatch):
    def broken(service):
        raise ImportError("No module named 'mcp.server'")

    monkeypatch.setattr(app.mcp_mount, "_build", broken)
    application = create_app(make_settings(model_dir))
    async with lifespan_running(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            with pytest.raises(AssertionError, match="MCP server failed to load"):
                await wait_until_ready(c, timeout=60)
            r = await c.get("/ready")
            assert r.status_code == 503 and r.json()["status"] == "failed"
            assert (await c.get("/health")).status_code == 200


async def test_the_call_overhead_is_measured_after_ready_and_given_to_the_scheduler(model_dir, caplog):
    """The call overhead, which only weighs a call against padding and protects nothing, is measured right
    after /ready; until then the scheduler uses the prior."""
    from app.capacity import PRIOR_OVERHEAD_TOKENS

    application = create_app(make_settings(model_dir))
    caplog.set_level("INFO", logger="app.startup")
    async with lifespan_running(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            await wait_until_ready(c)
        service = application.state.service
        await asyncio.wait_for(service._refining, 60)
        measured = [r for r in caplog.records if r.getMessage() == "call overhead measured"]
        assert len(measured) == 1
        overhead = service.batcher.policy.overhead_tokens
        assert round(overhead, 1) == measured[0].call_overhead_tokens
        assert overhead != PRIOR_OVERHEAD_TOKENS and overhead >= 0


async def test_a_set_call_overhead_is_used_as_it_is(model_dir):
    application = create_app(make_settings(model_dir, call_overhead_tokens=7.0))
    async with lifespan_running(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            await wait_until_ready(c)
        service = application.state.service
        assert service._refining is None and service.batcher.policy.overhead_tokens == 7.0


def test_the_peak_runs_before_ready_only_where_a_memory_limit_is_below_the_estimate(model_dir):
    from app.capacity import peak_before_ready
    from app.sizing import ModelShape, estimate

    settings = make_settings(model_dir)
    sized = estimate(settings, ModelShape.read(settings))
    assert not peak_before_ready(float("nan"), sized)  # no limit: nothing can OOM-kill the service
    assert not peak_before_ready(sized.limit_mb * 2**20, sized)  # the limit the manifests give
    assert not peak_before_ready(sized.peak_mb * 2**20, sized)
    assert peak_before_ready(sized.peak_mb * 2**20 - 1, sized)  # only the real run can tell


def test_the_rate_comes_from_the_largest_of_the_check_calls():
    from app.capacity import rate_of

    assert rate_of([(16, 0.001), (256, 0.05), (112, 0.02), (256, 0.07), (256, 0.06)]) == 256 / 0.06


@pytest.mark.parametrize("limit_mb", [None, 400])
def test_start_up_runs_the_engine_at_its_peak_only_when_the_limit_needs_proof(model_dir, monkeypatch, limit_mb):
    """Under no limit (or one at or above the estimate) the rate comes from the start check's calls; under a
    limit below the estimate the engine runs the full call on every lane before the job is done. Both rates are
    of one call while others run, so they agree within the machine's noise."""
    import app.memory
    from app.capacity import grow_to_peak
    from app.model import EmbeddingModel
    from app.startup import prepare, serving_executor

    # The container's cgroup limit, as app.memory reads it (there is none on a test host or in Dagger).
    monkeypatch.setattr(app.memory, "read", lambda what: float("nan") if limit_mb is None else limit_mb * 2**20)
    settings = make_settings(model_dir)
    model, executor, phases = EmbeddingModel(settings), serving_executor(settings), []
    try:
        prepared = prepare(model, executor, phases.append)
        peak = "running at the memory peak (the memory limit is below the estimate)"
        assert (peak in phases) == (limit_mb is not None)
        assert phases[-1] == (peak if limit_mb else "accuracy check running")
        full_calls = grow_to_peak(model, settings, executor)
    finally:
        executor.shutdown()
    assert 0.25 < prepared.cost.tokens_per_second / full_calls < 4, (prepared.cost.tokens_per_second, full_calls)
