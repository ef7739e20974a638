"""Check ONNX models against sentence-transformers on a fixed set of sentences.

The ONNX side is fed as the service feeds it: tokenizer.json truncated at max_seq_length, padded on the
right with the model's pad token, only the graph's inputs, the default prompt (if any) prepended.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from app.embedding_meta import EmbeddingMeta

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


def default_prompt(meta: EmbeddingMeta) -> str:
    """The text sentence-transformers prepends when encode() names no prompt."""
    return meta.prompts.get(meta.default_prompt_name, "") if meta.default_prompt_name else ""


def runner(model: Path, tokenizer: Path, meta: EmbeddingMeta) -> Callable[[list[str]], np.ndarray]:
    """A function from texts (no prompt added) to the graph's raw sentence_embedding, one padded batch."""
    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(meta.max_seq_length)
    tok.enable_padding(direction="right", pad_id=meta.pad_token_id, pad_token=tok.id_to_token(meta.pad_token_id) or "")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names != list(meta.inputs):
        raise VerificationFailed(f"{model.name} takes inputs {names}, embedding.json says {list(meta.inputs)}")

    def run(texts: list[str]) -> np.ndarray:
        enc = tok.encode_batch(texts)
        feed = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        return session.run(None, {k: np.asarray(feed[k], dtype=np.int64) for k in names})[0]

    return run


def min_cosine(model: Path, tokenizer: Path, reference: np.ndarray, meta: EmbeddingMeta) -> float:
    """Lowest cosine to the (normalized) reference over SENTENCES, one at a time and in one padded batch."""
    run = runner(model, tokenizer, meta)
    texts = [default_prompt(meta) + s for s in SENTENCES]
    got = np.vstack([run(texts), *(run([t]) for t in texts)])
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float((got * np.vstack([reference, reference])).sum(axis=1).min())


def check(name: str, value: float, threshold: float) -> None:
    if value < threshold:
        raise VerificationFailed(
            f"{name}: min cosine {value:.5f} against sentence-transformers is below {threshold}"
        )
