"""Memory sizing from the model's metadata and the settings: ``python -m app.sizing``.

Peak RSS of the service is the sum of four parts (docs/scheduling.md, "Memory"):

* **runtime**: Python, FastAPI, MCP, tokenizers and ONNX Runtime's code, without a model;
* **weights**: the graph as loaded (ORT keeps the initializers, some pre-packed; OpenVINO's IR counts its
  float16-stored weights at float32 size), plus, for OpenVINO's wide lane (app.engine.openvino), the second
  compiled model's copy: :data:`WIDE_LANE_WEIGHTS` of that;
* **calls**: the activations of the largest ONNX Runtime calls, ``EMBEDDER_WORKERS`` of them
  at once. ORT's arena grows to the peak of the largest calls and keeps it. Per padded token, the live tensors of one encoder layer
  are a few copies of the hidden state, of the feed-forward activations and of one row of
  attention scores per head: ``4 bytes x (hidden + intermediate + heads x max_seq_length)``
  times :data:`ACTIVATION_COPIES`. The call budget ``EMBEDDER_MAX_BATCH_TOKENS`` bounds it;
  where the container's memory limit is below this estimate, the service runs that many such calls at
  once before /ready (app.capacity.peak_before_ready), so a limit too small fails at start;
* **admitted work**: what admission control lets in: request bodies in flight
  (``EMBEDDER_MAX_QUEUED_BYTES``; each byte is held as bytes, then as parsed text) and the
  token ids of the admitted texts (``EMBEDDER_MAX_QUEUED_TOKENS``).

The constants were measured on all-MiniLM-L6-v2 fp32 on ONNX Runtime's CPU provider with
``bench.memory``; every model-dependent figure comes from the model directory, not from constants
of one model: the token limit from embedding.json, the encoder's widths from config.json (the
architecture's own key names; without one, the embedding width from embedding.json), the weights
from the ONNX file and its external-data file, if any.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from app.config import Settings, describe_settings_error, for_model
from app.cpus import cpu_budget
from app.embedding_meta import EmbeddingMeta, EmbeddingMetaError

MB = 1 << 20
#: RSS of the ready service without model weights and arena (measured; bench.memory).
RUNTIME_BYTES = 160 * MB
#: What the arena holds beyond the per-token part (short calls, ORT's own blocks; measured).
ARENA_BASE_BYTES = 48 * MB
#: RSS per byte of ONNX file once loaded (initializers + pre-packed copies; measured).
WEIGHTS_FACTOR = 1.1
#: OpenVINO's second compiled model (the wide lane), per byte of graph at float32 size (measured in-process on
#: all-MiniLM-L6-v2: +50 MB at f32, +30 MB at bf16, for 90 MB).
WIDE_LANE_WEIGHTS = 0.6
#: Live activation tensors per padded token, in units of (hidden + intermediate + heads x seq)
#: float32 values, arena rounding included (measured: bench.memory).
ACTIVATION_COPIES = 5.0
#: Bytes per admitted token id (Python int in a list) and per byte of request body in flight
#: (the body, the parsed JSON, the texts).
BYTES_PER_QUEUED_TOKEN = 40
BYTES_PER_BODY_BYTE = 3
#: Margin on top of the estimate for the limit (allocator fragmentation, GC timing).
HEADROOM = 1.25
#: config.json keys of each figure, by architecture family (BERT-likes, T5, DistilBERT, GPT-2).
WIDTH_KEYS = ("hidden_size", "d_model", "dim", "n_embd")
FFN_KEYS = ("intermediate_size", "d_ff", "hidden_dim", "n_inner")
HEADS_KEYS = ("num_attention_heads", "num_heads", "n_heads", "n_head")
LAYERS_KEYS = ("num_hidden_layers", "num_layers", "n_layers", "n_layer")


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs to know about the model (from its directory)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    max_seq_length: int
    graph_bytes: int

    @classmethod
    def read(cls, settings: Settings) -> ModelShape:
        meta = EmbeddingMeta.read(settings.model_dir)
        path = settings.model_dir / "config.json"
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        hidden = _first(config, WIDTH_KEYS) or meta.dimensions  # pooled width = hidden width without Dense
        return cls(
            layers=_first(config, LAYERS_KEYS) or 0,
            hidden=hidden,
            intermediate=_first(config, FFN_KEYS) or 4 * hidden,
            heads=_first(config, HEADS_KEYS) or 1,
            max_seq_length=meta.max_seq_length,
            graph_bytes=graph_bytes(settings),
        )


def graph_bytes(settings: Settings) -> int:
    """The graph's weights as the engine holds them: its files' size, and twice the IR's .bin when the model stage
    stored float16 weights (model.lock.json, verification), which the CPU plugin may widen to float32."""
    total = sum((settings.model_dir / name).stat().st_size for name in settings.graph_files)
    if settings.graph_path.suffix == ".xml":
        lock = json.loads((settings.model_dir / "model.lock.json").read_text(encoding="utf-8"))
        rel = settings.graph_path.relative_to(settings.model_dir).as_posix()
        if lock.get("verification", {}).get(rel, {}).get("weights") == "f16":
            total += settings.graph_path.with_suffix(".bin").stat().st_size
    return total


def _first(config: dict, keys: tuple[str, ...]) -> int | None:
    return next((int(config[k]) for k in keys if isinstance(config.get(k), int) and config[k] > 0), None)


@dataclass(frozen=True)
class MemoryEstimate:
    runtime_mb: float
    weights_mb: float
    call_mb: float
    admitted_mb: float
    peak_mb: float
    limit_mb: int  # peak x HEADROOM, rounded up to 64 MB: what to give the container

    def as_text(self) -> str:
        parts = ", ".join(f"{k.removesuffix('_mb')} {v:.0f} MB" for k, v in asdict(self).items() if k != "limit_mb")
        return f"{parts}; memory limit {self.limit_mb} MB (Mi)"


def activation_bytes_per_token(shape: ModelShape) -> float:
    seq = shape.max_seq_length
    return 4 * ACTIVATION_COPIES * (shape.hidden + shape.intermediate + shape.heads * seq)


def estimate(settings: Settings, shape: ModelShape) -> MemoryEstimate:
    from app.engine.openvino import plan

    settings = for_model(settings, shape.max_seq_length)
    call_tokens = min(settings.max_batch_tokens, settings.max_batch * shape.max_seq_length)
    runtime = RUNTIME_BYTES
    weights = WEIGHTS_FACTOR * shape.graph_bytes
    if settings.engine == "openvino" and plan(settings, cpu_budget().cpus)[2]:
        weights += WIDE_LANE_WEIGHTS * shape.graph_bytes
    call = ARENA_BASE_BYTES + settings.call_workers * call_tokens * activation_bytes_per_token(shape)
    admitted = settings.max_queued_tokens * BYTES_PER_QUEUED_TOKEN + settings.max_queued_bytes * BYTES_PER_BODY_BYTE
    peak = runtime + weights + call + admitted
    limit = -(-int(peak * HEADROOM) // (64 * MB)) * 64
    return MemoryEstimate(runtime / MB, weights / MB, call / MB, admitted / MB, peak / MB, limit)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m app.sizing",
        description="Memory limit for the service with the current EMBEDDER_* settings and model directory.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a line of text")
    args = p.parse_args(argv)
    try:
        settings = Settings()
    except Exception as exc:  # pydantic ValidationError: name the variable
        print(describe_settings_error(exc), file=sys.stderr)
        return 2
    try:
        shape = ModelShape.read(settings)
    except EmbeddingMetaError as exc:
        print(exc, file=sys.stderr)
        return 2
    est, settings = estimate(settings, shape), for_model(settings, shape.max_seq_length)
    if args.json:
        print(json.dumps({"model": asdict(shape), "settings": _settings(settings), **asdict(est)}, indent=2))
    else:
        print(est.as_text())
    return 0


def _settings(settings: Settings) -> dict:
    keys = ("engine", "max_batch", "max_batch_tokens", "max_queued_bytes", "max_queued_tokens")
    return {**{k: getattr(settings, k) for k in keys}, "workers": settings.call_workers}


if __name__ == "__main__":
    sys.exit(main())

