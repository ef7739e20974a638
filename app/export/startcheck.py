"""The start check's reference, written by the model stage: sentence-transformers' vectors of fixed texts.

The service (app.startcheck) reads it at start and compares its engine's vectors with it. Vectors are stored
normalized, as float16 (little-endian, base64): the model layer is then the same whichever CPU built it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

NAME = "startcheck.json"
_PASSAGE = "Rivers carve valleys over millions of years, carrying sediment from the mountains to the sea. "
#: Short queries, non-Latin text, code, a passage, a text at the 256-token limit of all-MiniLM-L6-v2 (254
#: one-token words and the two special tokens) and one far beyond it (truncated).
TEXTS = [
    "How do I reset my password?",
    "Tokyo is the capital of Japan.",
    "ok",
    "???",
    "Der Zug nach Berlin fährt um acht Uhr ab.",
    "机器学习模型需要大量的数据。",
    "SELECT name FROM users WHERE id = 7;",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    _PASSAGE * 6,
    " ".join(["data"] * 254),
    _PASSAGE * 30,
]


def write(model_dir: Path, texts: list[str], vectors: np.ndarray) -> None:
    """``texts`` as the service feeds them (default prompt included) and their normalized vectors."""
    half = np.ascontiguousarray(vectors, dtype="<f2")
    (model_dir / NAME).write_text(json.dumps({
        "texts": texts, "shape": list(half.shape), "dtype": "<f2",
        "vectors": base64.b64encode(half.tobytes()).decode(),
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
