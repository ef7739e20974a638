"""Admission control: the cap on admitted work, 503 + Retry-After past it, the service stays up."""

from __future__ import annotations

import asyncio
import threading

import pytest
from svc_support import make_settings, running_app

from app.admission import Admission
from app.config import Settings
from app.errors import Overloaded
from app.main import create_app
from app.model import EmbeddingModel
from app.capacity import check_capacity


def test_admit_reserve_resize_release():
    rejected: list[int] = []
    adm = Admission(
        max_texts=10, max_tokens=100, drain_seconds=lambda tokens: tokens / 20, on_reject=lambda: rejected.append(1)
    )
    a = adm.admit(4, 60)
    with pytest.raises(Overloaded) as refused:
        adm.admit(1, 50)  # 110 tokens > 100
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"] == "1"  # 10 excess tokens at 20/s, at least 1 s
    assert "EMBEDDER_MAX_QUEUED_TOKENS=100" in refused.value.message
    a.resize(20)  # the tokenizer counted fewer than the estimate
    b = adm.admit(6, 70)
    assert (adm.texts, adm.tokens) == (10, 90)
    with pytest.raises(Overloaded, match="EMBEDDER_MAX_QUEUED_TEXTS=10"):
        adm.admit(1, 1)
    a.release()
    a.release()  # idempotent
    with b:
        assert adm.admit(4, 10).texts == 4
    assert (adm.texts, adm.tokens, len(rejected)) == (4, 10, 2)


def test_retry_after_grows_with_the_backlog():
    adm = Admission(max_texts=1000, max_tokens=1000, drain_seconds=lambda tokens: tokens / 100)
    adm.admit(1, 1000)
    with pytest.raises(Overloaded) as refused:
        adm.admit(1, 500)
    assert refused.value.headers["Retry-After"] == "5"


def test_settings_that_could_never_admit_a_full_request_are_refused(model_dir):
    with pytest.raises(ValueError, match="EMBEDDER_MAX_QUEUED_TEXTS"):
        Settings(model_dir=model_dir, max_inputs=300, max_queued_texts=299)
    with pytest.raises(ValueError, match="EMBEDDER_MAX_QUEUED_TOKENS"):
        check_capacity(Settings(model_dir=model_dir, max_inputs=8, max_queued_tokens=8 * 256 - 1), 256)
    with pytest.raises(ValueError, match="EMBEDDER_MAX_BATCH_TOKENS"):
        check_capacity(Settings(model_dir=model_dir, max_batch_tokens=255), 256)


class Hold:
    """Holds the model inside its next call (while ``on``) until ``release()``: the cap stays full."""

    def __init__(self) -> None:
        self.on = False
        self.gate, self.entered = threading.Event(), threading.Event()

    def release(self) -> None:
        self.on = False
        self.gate.set()


@pytest.fixture
def hold(monkeypatch) -> Hold:
    held, original = Hold(), EmbeddingModel.run

    def held_run(self, batch):
        if held.on:
            held.entered.set()
            held.gate.wait(60)
        return original(self, batch)

    monkeypatch.setattr(EmbeddingModel, "run", held_run)
    return held


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/embed", {"inputs": ["one more"]}, lambda j: j["detail"]),
        ("/v1/embeddings", {"input": "one more", "model": "all-MiniLM-L6-v2"}, lambda j: j["error"]["message"]),
        ("/similarity", {"source": "a", "targets": ["b"]}, lambda j: j["detail"]),
    ],
)
async def test_past_the_cap_a_request_gets_503_and_the_admitted_one_completes(model_dir, hold, path, body, message):
    """The model is held inside the first request's call, so the cap is full while the next arrives."""
    settings = make_settings(model_dir, max_inputs=2, max_queued_texts=2, max_queued_tokens=2 * 256)
    app = create_app(settings)
    async with running_app(app) as client:
        hold.on = True
        first = asyncio.create_task(client.post("/embed", json={"inputs": ["first", "second"]}))
        await asyncio.to_thread(hold.entered.wait, 30)
        refused = await client.post(path, json=body)
        hold.release()
        done = await first
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        text = message(refused.json())
        assert "at capacity" in text and "EMBEDDER_MAX_QUEUED_TEXTS=2" in text
        if path.startswith("/v1/"):
            assert refused.json()["error"]["code"] == "overloaded"
        assert done.status_code == 200 and len(done.json()["embeddings"]) == 2
        again = await client.post(path, json=body)
        assert again.status_code == 200, again.text
        metrics = (await client.get("/metrics")).text
    assert "embedder_rejected_requests_total 1.0" in metrics
    for gauge in ("embedder_queue_texts 0.0", "embedder_admitted_texts 0.0", "embedder_admitted_tokens 0.0"):
        assert gauge in metrics


async def test_bodies_past_the_byte_cap_are_refused_before_they_are_read(model_dir, hold):
    app = create_app(make_settings(model_dir, max_queued_bytes=1000))
    async with running_app(app) as client:
        big = {"inputs": ["x" * 900]}  # alone it is admitted: one request always fits an idle service
        assert (await client.post("/embed", json=big)).status_code == 200
        hold.on = True
        first = asyncio.create_task(client.post("/embed", json={"inputs": ["held " * 50]}))
        await asyncio.to_thread(hold.entered.wait, 30)
        refused = await client.post("/v1/embeddings", json={"input": "y" * 900, "model": "all-MiniLM-L6-v2"})
        small = asyncio.create_task(client.post("/embed", json={"inputs": ["fits"]}))
        assert (await client.get("/ready")).status_code == 200  # GETs are not counted
        hold.release()
        assert (await first).status_code == 200 and (await small).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    error = refused.json()["error"]
    assert error["code"] == "overloaded" and "EMBEDDER_MAX_QUEUED_BYTES=1000" in error["message"]
    assert "embedder_rejected_requests_total 1.0" in metrics


async def test_admitted_work_is_released_after_errors(model_dir):
    """A 413 after tokenization (truncate false) gives its reservation back."""
    app = create_app(make_settings(model_dir, max_inputs=2, max_queued_texts=2, max_queued_tokens=512))
    async with running_app(app) as client:
        for _ in range(3):
            r = await client.post("/embed", json={"inputs": ["word " * 300, "ok"], "truncate": False})
            assert r.status_code == 413
        assert (await client.post("/embed", json={"inputs": ["a", "b"]})).status_code == 200
        service = app.state.service
        assert (service.admission.texts, service.admission.tokens) == (0, 0)


def test_default_admission_bound_follows_the_models_token_limit(model_dir):
    """Unset, EMBEDDER_MAX_QUEUED_TOKENS is 1.25 full requests of the model: 81,920 for 256 texts of 256 tokens,
    and a 512-token model starts with the defaults (a fixed 81,920 would be below one full request)."""
    from app.config import for_model

    settings = Settings(model_dir=model_dir)
    assert settings.max_queued_tokens is None
    assert for_model(settings, 256).max_queued_tokens == 81_920
    longer = for_model(settings, 512)
    check_capacity(longer, 512)
    assert longer.max_queued_tokens == int(1.25 * settings.max_inputs * 512)
    assert for_model(Settings(model_dir=model_dir, max_queued_tokens=70_000), 512).max_queued_tokens == 70_000
