"""Inference engines behind one small interface: load a model directory's graph, run one call of token ids,
describe itself. Tokenizing, padding and normalizing stay in app.model, the same for every engine.

An engine gets the padded int64 inputs the graph takes (``input_ids``, ``attention_mask`` and, for models
that take it, ``token_type_ids``; app.engine.graph.FEEDABLE) and returns the graph's ``sentence_embedding`` output:
[batch, dimensions] float32, pooled and not normalized.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

import numpy as np

from app.config import Settings
from app.embedding_meta import EmbeddingMeta


class Engine(Protocol):
    name: str
    #: Calls that run side by side under load (more wait for one): the drain estimate's factor.
    calls_at_once: int
    #: A one-text call is padded to a multiple of this many tokens (1: to its own length); app.model.feed.
    lone_width_multiple: int

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """One call: the graph's inputs in, [batch, dimensions] float32 out."""

    def run_at_peak(self, feed: Mapping[str, np.ndarray], executor: Executor) -> list[float]:
        """Run ``feed`` (the largest call) once on everything that keeps memory per call, on ``executor``'s
        threads, so that the engine's memory is at its peak; the seconds of each call that ran while the
        engine was as busy as under load."""

    def describe(self) -> dict:
        """What /ready and the ``model loaded`` log line report: engine, version, precision, threads."""


def timed(run, feed: Mapping[str, np.ndarray]) -> float:
    """Seconds of one call ``run(feed)``."""
    started = time.perf_counter()
    run(feed)
    return max(time.perf_counter() - started, 1e-6)


class EngineUnavailable(RuntimeError):
    """The engine the settings name is not installed here."""


def load(settings: Settings, graph: Path, meta: EmbeddingMeta) -> Engine:
    """EMBEDDER_ENGINE's engine for ``graph`` (a file of the model directory), checked against the model's
    metadata. An image ships one engine: asking for another is an error that says which one it has."""
    if not _installed(settings.engine):
        shipped = [name for name in ENGINES if _installed(name)]
        raise EngineUnavailable(
            f"EMBEDDER_ENGINE={settings.engine}, but {settings.engine} is not installed here"
            + (f"; this environment has {', '.join(shipped)}: set EMBEDDER_ENGINE={shipped[0]}" if shipped else "")
        )
    if settings.engine == "openvino":
        from app.engine.openvino import OpenVino as engine
    else:
        from app.engine.onnxruntime import OnnxRuntime as engine
    return engine.load(settings, graph, meta)


ENGINES = ("onnxruntime", "openvino")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
