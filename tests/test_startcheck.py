"""The start-time accuracy check (app.startcheck): its policy alone, then the service on the real model, and on
copies of the model directory whose reference vectors are moved so that each path of the policy is taken
for real (the engines' own vectors decide where to move them; the threshold stays 0.9999)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from svc_support import make_settings, running_app

from app import startcheck
from app.export import startcheck as reference
from app.config import Settings
from app.lock import LOCK_NAME, file_entry
from app.main import create_app
from app.model import EmbeddingModel
from app.service import normalize_rows


@pytest.mark.parametrize(("setting", "precision", "cosine", "action"), [
    ("auto", "f32", 0.99995, "serve"),
    ("auto", "bf16", 0.99995, "serve"),
    ("auto", "bf16", 0.9998, "fallback"),
    ("bf16", "bf16", 0.9998, "warn"),
    ("bf16", "bf16", 0.985, "fail"),
    ("f32", "f32", 0.9998, "fail"),
    ("auto", "f32", 0.9998, "fail"),
])
def test_policy(setting, precision, cosine, action):
    verdict = startcheck.decide(setting, precision, cosine, 11)
    assert verdict.action == action
    assert (verdict.message is None) == (action == "serve")
    if action != "serve":
        assert f"{cosine:.6f}" in verdict.message


def test_what_the_model_stage_writes_the_service_reads_in_the_same_directions(tmp_path):
    vectors = normalize_rows(np.random.default_rng(0).standard_normal((3, 384)).astype(np.float32))
    reference.write(tmp_path, ["a", "b", "c"], vectors)
    assert reference.NAME == startcheck.NAME
    texts, back = startcheck.read(tmp_path)
    assert texts == ["a", "b", "c"]
    assert np.sum(normalize_rows(back) * vectors, axis=1).min() > 0.999999


async def test_the_service_reports_its_check_on_the_real_model(client):
    body = (await client.get("/ready")).json()
    assert body["accuracy"]["min_cosine"] >= 0.9999 and body["accuracy"]["texts"] == len(reference.TEXTS)
    assert body["accuracy"]["precision"] == body["engine"].get("precision", "f32")


def with_reference(model_dir: Path, dest: Path, vectors: np.ndarray) -> Path:
    """A copy of the model directory (symlinks) whose startcheck.json holds ``vectors``; its lock follows."""
    for src in model_dir.rglob("*"):
        if src.is_file() and src.name not in (startcheck.NAME, LOCK_NAME):
            out = dest / src.relative_to(model_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.symlink_to(src)
    texts, _ = startcheck.read(model_dir)
    reference.write(dest, texts, vectors)
    lock = json.loads((model_dir / LOCK_NAME).read_text())
    lock["files"][startcheck.NAME] = file_entry(dest / startcheck.NAME)
    (dest / LOCK_NAME).write_text(json.dumps(lock, indent=2) + "\n")
    return dest


def engine_vectors(model_dir: Path, **settings) -> np.ndarray:
    model = EmbeddingModel(Settings(model_dir=model_dir, **settings))
    model.load()
    texts, _ = startcheck.read(model_dir)
    return normalize_rows(model.embed(texts))


async def ready_after_start(model_dir: Path, **settings) -> tuple[int, dict]:
    app = create_app(make_settings(model_dir, **settings))
    async with running_app(app, wait_ready=False) as client:
        deadline = time.monotonic() + 120
        while (r := await client.get("/ready")).json()["status"] in ("starting", "loading"):
            assert time.monotonic() < deadline, r.text
            await asyncio.sleep(0.05)
        return r.status_code, r.json()


async def test_f32_below_the_contract_is_not_ready_and_says_why(model_dir, tmp_path):
    _, vectors = startcheck.read(model_dir)
    moved = with_reference(model_dir, tmp_path / "m", np.roll(vectors, 1, axis=0))  # each text, another's vector
    status, body = await ready_after_start(moved)
    assert status == 503 and body["status"] == "failed", body
    assert "accuracy check failed" in body["reason"] and "below 0.9999" in body["reason"], body


def pushed_from_bf16(f32: np.ndarray, bf16: np.ndarray, angle: float = 0.0135) -> np.ndarray:
    """The f32 vectors, the one farthest from bf16 turned ``angle`` rad further away from it, in their plane:
    f32 still meets 0.9999 (cos 0.0135 = 0.999909, well above the float16 rounding), bf16 no longer does."""
    out = f32.copy()
    i = int(np.argmin(np.sum(f32 * bf16, axis=1)))
    away = f32[i] - bf16[i]
    away -= np.dot(away, f32[i]) * f32[i]
    out[i] = np.cos(angle) * f32[i] + np.sin(angle) * away / np.linalg.norm(away)
    return out


@pytest.fixture(scope="module")
def bf16_pushed(model_dir, tmp_path_factory) -> Path:
    ov = pytest.importorskip("openvino")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU runs no bf16 natively: auto is f32 here, there is no bf16 path to take")
    f32 = engine_vectors(model_dir, engine="openvino", precision="f32")
    bf16 = engine_vectors(model_dir, engine="openvino", precision="bf16")
    return with_reference(model_dir, tmp_path_factory.mktemp("bf16") / "m", pushed_from_bf16(f32, bf16))


async def test_auto_falls_back_to_f32_when_bf16_misses_and_says_so(bf16_pushed, caplog):
    with caplog.at_level(logging.WARNING, logger="app.service"):
        status, body = await ready_after_start(bf16_pushed, engine="openvino")
    assert status == 200, body
    assert body["engine"]["precision"] == "f32" and body["accuracy"]["precision"] == "f32", body
    assert 0.9999 <= body["accuracy"]["min_cosine"] < 0.99999, body
    (fallback,) = [r for r in caplog.records if "running f32 instead" in r.getMessage()]
    assert fallback.precision == "bf16" and fallback.min_cosine < 0.9999


async def test_explicit_bf16_below_the_contract_serves_with_a_warning(bf16_pushed, caplog):
    with caplog.at_level(logging.WARNING, logger="app.service"):
        status, body = await ready_after_start(bf16_pushed, engine="openvino", precision="bf16")
    assert status == 200 and body["accuracy"]["precision"] == "bf16", body
    assert 0.99 <= body["accuracy"]["min_cosine"] < 0.9999, body
    assert any("serving bf16 as EMBEDDER_PRECISION=bf16 asks" in r.getMessage() for r in caplog.records)
