"""Check exported graphs (ONNX on ONNX Runtime, OpenVINO IR on OpenVINO) against sentence-transformers.

Two text sets: SENTENCES (fixed edge cases, also the test suites' reference) and the held-out set
(heldout.json: accuracy figures only, in no test's own texts). Graphs are fed as the service feeds them:
tokenizer.json truncated at max_seq_length, padded on the right with the model's pad token, only the graph's
inputs, the default prompt (if any) prepended.
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


#: Held-out texts for the accuracy figures (README, lock, integration tests); see its "about".
HELDOUT = json.loads((Path(__file__).with_name("heldout.json")).read_text(encoding="utf-8"))["texts"]


class VerificationFailed(RuntimeError):
    """An exported model drifted from sentence-transformers beyond its threshold."""


def default_prompt(meta: EmbeddingMeta) -> str:
    """The text sentence-transformers prepends when encode() names no prompt."""
    return meta.prompts.get(meta.default_prompt_name, "") if meta.default_prompt_name else ""


def _session(model: Path, precision: str) -> tuple[list[str], Callable[[dict], np.ndarray]]:
    """The graph's input names and a function from a feed to its first output: ONNX Runtime for .onnx files,
    OpenVINO (compute precision ``precision``, f32 or bf16) for IR .xml files."""
    if model.suffix == ".xml":
        import openvino as ov

        compiled = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()
        return ([i.get_any_name() for i in compiled.inputs],
                lambda feed: np.array(request.infer(feed)[compiled.output(0)], dtype=np.float32))
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()], lambda feed: session.run(None, feed)[0]


def runner(model: Path, tokenizer: Path, meta: EmbeddingMeta, precision: str = "f32"
           ) -> Callable[[list[str]], np.ndarray]:
    """A function from texts (no prompt added) to the graph's raw sentence_embedding, one padded batch."""
    tok = Tokenizer.from_file(str(tokenizer))
    tok.enable_truncation(meta.max_seq_length)
    tok.enable_padding(direction="right", pad_id=meta.pad_token_id, pad_token=tok.id_to_token(meta.pad_token_id) or "")
    names, call = _session(model, precision)
    if names != list(meta.inputs):
        raise VerificationFailed(f"{model.name} takes inputs {names}, embedding.json says {list(meta.inputs)}")

    def run(texts: list[str]) -> np.ndarray:
        enc = tok.encode_batch(texts)
        feed = {
            "input_ids": [e.ids for e in enc],
            "attention_mask": [e.attention_mask for e in enc],
            "token_type_ids": [e.type_ids for e in enc],
        }
        return call({k: np.asarray(feed[k], dtype=np.int64) for k in names})

    return run


def min_cosine(model: Path, tokenizer: Path, reference: np.ndarray, meta: EmbeddingMeta,
               texts: list[str] = SENTENCES, precision: str = "f32", batch: int = 32) -> float:
    """Lowest cosine to the (normalized) reference of ``texts``, one at a time and in padded batches."""
    return runner_min_cosine(runner(model, tokenizer, meta, precision), meta, reference, texts, batch)


def runner_min_cosine(run: Callable[[list[str]], np.ndarray], meta: EmbeddingMeta, reference: np.ndarray,
                      texts: list[str] = SENTENCES, batch: int = 32) -> float:
    """min_cosine with a runner already loaded (one load for several text sets)."""
    prompted = [default_prompt(meta) + s for s in texts]
    got = np.vstack([*(run(prompted[i:i + batch]) for i in range(0, len(prompted), batch)),
                     *(run([t]) for t in prompted)])
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    return float((got * np.vstack([reference, reference])).sum(axis=1).min())


def check(name: str, value: float, threshold: float) -> None:
    if value < threshold:
        raise VerificationFailed(
            f"{name}: min cosine {value:.5f} against sentence-transformers is below {threshold}"
        )
