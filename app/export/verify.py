"""Check ONNX models against sentence-transformers on a fixed set of sentences."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

# Short, long (over the 256-token limit), punctuation-only, non-Latin and mixed-case inputs.
SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "hi",
    "!!!",
    "Ceci n'est pas une pipe.",
    "数据库连接失败，请稍后再试。",
    "Embeddings map text to vectors; cosine similarity compares them.",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons.",
    "I LOVE PIZZA with extra cheese",
    "Python 3.13 was released in October 2024.",
    "The cat sat on the mat while the dog slept by the fire, dreaming of rabbits in endless fields. " * 8,
    "token " * 400,
]


class VerificationFailed(RuntimeError):
    """An exported model drifted from sentence-transformers beyond its threshold."""


def onnx_embeddings(model: Path, tokenizer: Path, texts: list[str], max_tokens: int) -> np.ndarray:
    """Normalized embeddings from an exported model, one text per call and all texts in one padded batch."""
    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(max_tokens)
    tok.enable_padding()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}

    def run(batch: list[str]) -> np.ndarray:
        enc = tok.encode_batch(batch)
        feed = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        out = session.run(None, {k: np.asarray(v, dtype=np.int64) for k, v in feed.items() if k in names})[0]
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    return np.vstack([run(texts), *(run([t]) for t in texts)])


def min_cosine(model: Path, tokenizer: Path, reference: np.ndarray, max_tokens: int) -> float:
    got = onnx_embeddings(model, tokenizer, SENTENCES, max_tokens)
    ref = np.vstack([reference, reference])
    return float((got * ref).sum(axis=1).min())


def check(name: str, value: float, threshold: float) -> None:
    if value < threshold:
        raise VerificationFailed(
            f"{name}: min cosine {value:.5f} against sentence-transformers is below {threshold}"
        )
