"""The graph contract every engine checks at load: the inputs the service feeds, the output it reads."""

from __future__ import annotations

from app.embedding_meta import NAME as META_NAME
from app.embedding_meta import REEXPORT, EmbeddingMeta

OUTPUT_NAME = "sentence_embedding"
#: Graph inputs the service knows how to feed, from token ids and the attention mask.
FEEDABLE = ("input_ids", "attention_mask", "token_type_ids")


class ModelIntegrityError(RuntimeError):
    """The model directory cannot be read or does not hold what the export contract says."""


def check_graph(inputs: list[str], outputs: dict[str, list], meta: EmbeddingMeta, rel: str) -> None:
    """The graph takes exactly the metadata's inputs and outputs its width; else ModelIntegrityError."""
    fix = REEXPORT
    unknown = [n for n in meta.inputs if n not in FEEDABLE]
    if unknown:
        raise ModelIntegrityError(
            f"{META_NAME} lists inputs {unknown} the service cannot feed (it feeds {list(FEEDABLE)}); {fix}"
        )
    if sorted(inputs) != sorted(meta.inputs) or OUTPUT_NAME not in outputs:
        raise ModelIntegrityError(
            f"{rel} takes inputs {inputs} and outputs {list(outputs)}; {META_NAME} says inputs "
            f"{list(meta.inputs)} and output {OUTPUT_NAME!r}; {fix}"
        )
    width = outputs[OUTPUT_NAME][-1]
    if isinstance(width, int) and width != meta.dimensions:
        raise ModelIntegrityError(f"{rel} outputs {width} dimensions, {META_NAME} says {meta.dimensions}; {fix}")
