"""The model: a `tokenizers` tokenizer and an inference engine (app.engine; no torch).

The model directory is the contract written by ``python -m app.export``: the ONNX graph outputs
``sentence_embedding`` (pooled, dense layers applied, not normalized) for the int64 inputs that
``embedding.json`` lists (app.embedding_meta), of shape [batch, seq]. Everything model-specific
(width, token limit, inputs, padding id, normalization, prompts) comes from that file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import startcheck
from app.config import Settings
from app.embedding_meta import NAME as META_NAME
from app.embedding_meta import REEXPORT, EmbeddingMeta, EmbeddingMetaError
from app.engine import Engine
from app.engine import load as load_engine
from app.engine.graph import ModelIntegrityError
from app.lock import Lock

log = logging.getLogger(__name__)

__all__ = ["EmbeddingModel", "ModelInfo", "ModelIntegrityError", "Tokenized"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the model directory says about itself (cheap to read, no model load)."""

    repo: str
    revision: str
    files: dict[str, dict]
    meta: EmbeddingMeta

    @property
    def max_seq_length(self) -> int:
        return self.meta.max_seq_length

    @property
    def name(self) -> str:
        return self.repo.rsplit("/", 1)[-1]

    def describe(self) -> dict:
        """Name, width, token limit, normalization and prompts (for /ready and /v1/models)."""
        meta = self.meta
        return {
            "name": self.name,
            "dimensions": meta.dimensions,
            "max_seq_length": meta.max_seq_length,
            "normalize": meta.normalize,
            "prompts": meta.prompts,
            "default_prompt_name": meta.default_prompt_name,
        }

    @classmethod
    def read(cls, model_dir: Path) -> ModelInfo:
        try:
            meta = EmbeddingMeta.read(model_dir)
        except EmbeddingMetaError as exc:
            raise ModelIntegrityError(str(exc)) from exc
        try:
            lock = json.loads((model_dir / "model.lock.json").read_text(encoding="utf-8"))
            return cls(
                repo=str(lock["repo"]),
                revision=str(lock["revision"]),
                files=dict(lock.get("files", {})),
                meta=meta,
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelIntegrityError(
                f"cannot read {model_dir / 'model.lock.json'}: {type(exc).__name__}: {exc}; {REEXPORT}"
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


def lone_width(length: int, multiple: int, limit: int) -> int:
    """``length`` rounded up to ``multiple``, but not past ``limit`` (unless ``length`` already is)."""
    return max(length, min(-(-length // multiple) * multiple, limit))


class EmbeddingModel:
    """Tokenizer + engine. ``load()`` is slow: call it off the event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.info = ModelInfo.read(settings.model_dir)
        self.meta = self.info.meta
        self.dimensions: int = self.meta.dimensions
        self._tokenizer = None
        self._engine: Engine | None = None

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "model not loaded"
        return self._engine

    def load(self) -> None:
        from tokenizers import Tokenizer

        s = self.settings
        if s.verify_model:
            used = ["tokenizer.json", *s.graph_files] + [n for n in (META_NAME, startcheck.NAME) if n in self.info.files]
            Lock(self.info.repo, self.info.revision, self.info.files).verify(s.model_dir, used)
        tokenizer = Tokenizer.from_file(str(s.model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # padding is per batch, to the longest sequence
        tokenizer.enable_truncation(max_length=self.info.max_seq_length)
        engine = load_engine(s, s.graph_path, self.meta)
        self._tokenizer, self._engine = tokenizer, engine
        log.info(
            "model loaded",
            extra={
                "model": self.info.repo,
                **engine.describe(),
                "inputs": list(self.meta.inputs),
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
            if enc.overflowing:  # each piece repeats the special tokens: count them once
                over.append(i)
                full[i] = len(tok) + sum(len(o.ids) - sum(o.special_tokens_mask) for o in enc.overflowing)
        return Tokenized(ids, lengths, over, full)

    def run(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """One engine call: pad (pad_token_id) to the longest sequence of this batch, return [n, dim] float32."""
        assert self._engine is not None, "model not loaded"
        return self._engine.run(self.feed(batch))

    def feed(self, batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """The graph's inputs for ``batch``, padded to its longest sequence (only the inputs the graph takes); a
        lone text to the engine's ``lone_width_multiple`` (never past the model's token limit or its own length)."""
        n = len(batch)
        width = max(len(seq) for seq in batch)
        if n == 1:
            width = lone_width(width, self.engine.lone_width_multiple, self.info.max_seq_length)
        input_ids = np.full((n, width), self.meta.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq)] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention}
        if "token_type_ids" in self.meta.inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return {name: feed[name] for name in self.meta.inputs}

    def use_precision(self, precision: str) -> None:
        """Load the engine again at another precision (the start check's fallback to f32)."""
        self._engine = load_engine(self.settings.model_copy(update={"precision": precision}), self.settings.graph_path,
                                   self.meta)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Raw sentence embeddings of ``texts`` (no prompt added, not normalized): one call."""
        return self.run(self.tokenize(texts).ids)

    def warm_up(self) -> None:
        """One real inference so the first request does not pay the engine's lazy init."""
        tok = self.tokenize(["warm-up", "a somewhat longer warm-up sentence for the model"])
        self.run(tok.ids)
