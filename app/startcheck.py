"""The start-time accuracy check: the engine, at the precision it chose, against sentence-transformers.

The model stage (app.export.startcheck) embeds its fixed texts with sentence-transformers and writes them and
their vectors, rounded to float16 so that the model layer is the same on any build CPU, into the model
directory (NAME; the file's format is tested on both sides in tests/test_startcheck.py). At start the service
embeds the same texts (one at a time, and the short ones in one padded batch) and compares. ``decide`` is the
policy, apart so that it is testable alone:

- at or above the contract (0.9999): serve;
- bf16 below it: under ``EMBEDDER_PRECISION=auto``, fall back to f32 and say why; an explicit ``bf16`` is the
  user's trade: served with a warning down to 0.99, refused below;
- f32 below it: the model directory does not match its own reference: not ready, with the reason.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.embedding_meta import REEXPORT
from app.engine.graph import ModelIntegrityError

NAME = "startcheck.json"  # app.export.startcheck writes it
#: Min cosine against sentence-transformers that the service promises.
CONTRACT = 0.9999
#: An explicit bf16 is refused below this.
BF16_FLOOR = 0.99


def read(model_dir: Path) -> tuple[list[str], np.ndarray]:
    try:
        body = json.loads((model_dir / NAME).read_text(encoding="utf-8"))
        vectors = np.frombuffer(base64.b64decode(body["vectors"]), dtype=body["dtype"]).reshape(body["shape"])
        texts = list(body["texts"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelIntegrityError(f"cannot read {model_dir / NAME} ({type(exc).__name__}: {exc}); {REEXPORT}") from exc
    if len(texts) != len(vectors):
        raise ModelIntegrityError(f"{model_dir / NAME}: {len(texts)} texts, {len(vectors)} vectors; {REEXPORT}")
    return texts, vectors.astype(np.float32)


#: Texts this short also go through one padded batch together (padding of mixed lengths is checked); the long
#: ones only one at a time, as a batch of 11 texts padded to 256 tokens would add ~0.85 s to every start.
BATCH_CHARS = 200


def min_cosine(embed, texts: list[str], vectors: np.ndarray, map_=map) -> float:
    """Lowest cosine of ``embed`` (texts -> vectors) to ``vectors``: each text alone, and the short ones
    (< BATCH_CHARS) in one padded batch. ``map_`` runs the calls (an executor's map runs them side by side)."""
    short = [i for i, t in enumerate(texts) if len(t) < BATCH_CHARS]
    got = np.vstack(list(map_(embed, [*([t] for t in texts), [texts[i] for i in short]])))
    want = np.vstack([vectors, vectors[short]])
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    return float((got * want).sum(axis=1).min())


@dataclass(frozen=True)
class Verdict:
    action: str  # "serve", "warn" (serve, say so), "fallback" (to f32, then check again) or "fail"
    message: str | None = None


def decide(setting: str, precision: str, cosine: float, texts: int) -> Verdict:
    """What to do with ``cosine``, measured at ``precision`` (chosen under EMBEDDER_PRECISION=``setting``)."""
    floor = CONTRACT
    figure = f"{precision} min cosine {cosine:.6f} against sentence-transformers ({texts} texts)"
    if cosine >= floor:
        return Verdict("serve")
    if precision == "bf16" and setting == "auto":
        return Verdict("fallback", f"{figure} is below {floor}: running f32 instead (EMBEDDER_PRECISION=auto)")
    if precision == "bf16" and cosine >= BF16_FLOOR:
        return Verdict("warn", f"{figure} is below {floor}; serving bf16 as EMBEDDER_PRECISION=bf16 asks "
                               "(set auto or f32 for the full-precision contract)")
    if precision == "bf16":
        return Verdict("fail", f"{figure} is below {BF16_FLOOR}: refusing to serve; set EMBEDDER_PRECISION=auto or f32")
    return Verdict("fail", f"{figure} is below {floor}: the model directory does not match its reference; {REEXPORT}")


class StartCheckFailed(RuntimeError):
    """The engine's vectors do not meet the contract at any precision it may serve."""


def run(model, setting: str, log, map_=map) -> dict:
    """Check ``model`` (an app.model.EmbeddingModel, loaded) against its directory's reference; fall back to
    f32 when the policy says so. Returns what /ready reports; StartCheckFailed when it may not serve.
    ``map_`` runs the engine calls (see min_cosine)."""
    texts, vectors = read(model.settings.model_dir)
    while True:
        precision = model.engine.describe().get("precision", "f32")
        cosine = min_cosine(model.embed, texts, vectors, map_)
        verdict = decide(setting, precision, cosine, len(texts))
        figure = {"precision": precision, "min_cosine": round(cosine, 6), "texts": len(texts)}
        if verdict.action == "fallback":
            log.warning(verdict.message, extra=figure)
            model.use_precision("f32")
            setting = "f32"
            continue
        if verdict.action == "fail":
            raise StartCheckFailed(verdict.message)
        if verdict.action == "warn":
            log.warning(verdict.message, extra=figure)
        return figure
