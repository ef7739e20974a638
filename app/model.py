"""The model: a `tokenizers` tokenizer and an ONNX Runtime session (no torch).

The model directory is the contract written by ``python -m app.export``: the ONNX
graph outputs ``sentence_embedding`` (mean-pooled, not normalized) for int64
``input_ids`` / ``attention_mask`` / ``token_type_ids`` of shape [batch, seq].
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.config import Settings
from app.lock import Lock

log = logging.getLogger(__name__)

OUTPUT_NAME = "sentence_embedding"


class ModelIntegrityError(RuntimeError):
    """The model directory cannot be read or does not hold what the export contract says."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the model directory says about itself (cheap to read, no model load)."""

    repo: str
    revision: str
    variant: str
    max_seq_length: int
    files: dict[str, dict]

    @property
    def name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]

    @classmethod
    def read(cls, model_dir: Path, variant: str) -> ModelInfo:
        try:
            lock = json.loads((model_dir / "model.lock.json").read_text(encoding="utf-8"))
            st_config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
            return cls(
                repo=str(lock["repo"]),
                revision=str(lock["revision"]),
                variant=variant,
                max_seq_length=int(st_config.get("max_seq_length", 256)),
                files=dict(lock.get("files", {})),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(
                f"cannot read the model description in {model_dir} (model.lock.json, "
                f"sentence_bert_config.json): {type(exc).__name__}: {exc}"
            ) from exc


@dataclass(slots=True)
class Tokenized:
    """Token ids of each text (special tokens included), already truncated if asked."""

    ids: list[list[int]]
    lengths: list[int]  # tokens the model sees, per text
    over_limit: list[int]  # indexes of texts longer than max_seq_length (before truncation)
    full_lengths: dict[int, int]  # untruncated length of those texts

    @property
    def total_tokens(self) -> int:
        return sum(self.lengths)


class EmbeddingModel:
    """Tokenizer + ORT session. ``load()`` is slow: call it off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.info = ModelInfo.read(settings.model_dir, settings.variant)
        self.dimensions: int | None = None
        self._tokenizer = None
        self._session = None
        self._input_names: tuple[str, ...] = ()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        from onnxruntime import GraphOptimizationLevel, InferenceSession, SessionOptions
        from tokenizers import Tokenizer

        s = self.settings
        onnx_rel = str(s.onnx_path.relative_to(s.model_dir))
        if s.verify_model:
            Lock(self.info.repo, self.info.revision, self.info.files).verify(s.model_dir, ["tokenizer.json", onnx_rel])
        tokenizer = Tokenizer.from_file(str(s.model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # padding is per batch, to the longest sequence
        tokenizer.enable_truncation(max_length=self.info.max_seq_length)

        opts = SessionOptions()
        opts.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = s.intra_op_threads
        opts.inter_op_num_threads = s.inter_op_threads
        opts.log_severity_level = 3
        # Spinning pool threads take ~1.6 of 2 cores at one client for a few % of latency
        # (README, "ORT thread spinning"); when on, they still stop as soon as a Run() returns, so
        # the event loop thread gets the CPU back between calls.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if s.ort_spinning else "0")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        # The arena keeps its peak; the call budget (EMBEDDER_MAX_BATCH_TOKENS) is what bounds that peak.
        opts.enable_cpu_mem_arena = s.ort_arena
        session = InferenceSession(str(s.onnx_path), opts, providers=["CPUExecutionProvider"])
        names = tuple(i.name for i in session.get_inputs())
        outputs = {o.name: o for o in session.get_outputs()}
        if OUTPUT_NAME not in outputs or "input_ids" not in names:
            raise ModelIntegrityError(
                f"{onnx_rel}: expected input 'input_ids' and output {OUTPUT_NAME!r}, "
                f"got inputs {list(names)} and outputs {list(outputs)}"
            )
        dim = outputs[OUTPUT_NAME].shape[-1]
        self._tokenizer, self._session, self._input_names = tokenizer, session, names
        self.dimensions = dim if isinstance(dim, int) else None
        if self.dimensions is None:  # symbolic output width: ask the model
            self.dimensions = int(self.run([[101, 102]]).shape[1])
        log.info(
            "model loaded",
            extra={
                "model": self.info.repo,
                "variant": s.variant,
                "inputs": list(names),
                "dimensions": self.dimensions,
                "max_seq_length": self.info.max_seq_length,
            },
        )

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        """Tokenize (truncating to max_seq_length) and report texts that were too long."""
        assert self._tokenizer is not None, "model not loaded"
        if len(texts) == 1:
            encodings = [self._tokenizer.encode(texts[0])]
        else:
            encodings = self._tokenizer.encode_batch(list(texts))
        ids, lengths, over, full = [], [], [], {}
        for i, enc in enumerate(encodings):
            tok = enc.ids
            ids.append(tok)
            lengths.append(len(tok))
            if enc.overflowing:
                over.append(i)
                full[i] = len(tok) + sum(len(o.ids) for o in enc.overflowing) - 2 * len(enc.overflowing)
        return Tokenized(ids, lengths, over, full)

    def run(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """One ORT call: pad to the longest sequence of this batch, return [n, dim] float32."""
        assert self._session is not None, "model not loaded"
        n = len(batch)
        width = max(len(seq) for seq in batch)
        input_ids = np.zeros((n, width), dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feed = {k: v for k, v in feed.items() if k in self._input_names}
        (out,) = self._session.run([OUTPUT_NAME], feed)
        return np.asarray(out, dtype=np.float32)

    def warm_up(self) -> None:
        """One real inference so the first request does not pay ORT's lazy init."""
        tok = self.tokenize(["warm-up", "a somewhat longer warm-up sentence for the model"])
        self.run(tok.ids)
