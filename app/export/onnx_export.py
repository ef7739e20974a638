"""Export a sentence-transformers model to ONNX (fp32): transformer, pooling and Dense layers in one graph.

The graph takes the int64 inputs the model takes, in the order of INPUTS, and outputs OUTPUT
[batch, dimensions], before any Normalize (the service applies that, as embedding.json says).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from . import pooling
from .st_config import StConfig, Unsupported

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"
OPSET = 17
SAMPLE = ["an example sentence", "a second, somewhat longer example sentence"]


class Embedder(torch.nn.Module):
    """The transformer, then the pooling mode, then the Dense layers; normalization stays in the service."""

    def __init__(self, transformer: torch.nn.Module, mode: str, dense: list[torch.nn.Module]):
        super().__init__()
        self.transformer = transformer
        self.pool = pooling.MODES[mode]
        self.dense = torch.nn.ModuleList(dense)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        embedding = self.pool(hidden, attention_mask)
        for layer in self.dense:  # sentence-transformers' Dense: linear, activation (and residual if set)
            embedding = layer({OUTPUT: embedding})[OUTPUT]
        return embedding


def model_inputs(model: SentenceTransformer) -> tuple[str, ...]:
    """The inputs the tokenizer produces and the transformer's forward takes, in INPUTS order."""
    produced = set(model.tokenizer.model_input_names)
    taken = set(inspect.signature(model[0].auto_model.forward).parameters)
    names = tuple(n for n in INPUTS if n in produced and n in taken)
    if names[:2] != INPUTS[:2]:
        raise Unsupported(
            f"the tokenizer produces {sorted(produced)} and the transformer takes {sorted(taken & set(INPUTS))}; "
            f"the export needs at least {list(INPUTS[:2])}"
        )
    return names


def embedder(model: SentenceTransformer, config: StConfig) -> Embedder:
    """The module to export, after checking the loaded model is the pipeline config describes."""
    kinds = [type(m).__name__ for m in model]
    want = ["Transformer", "Pooling", *["Dense"] * len(config.dense), *(["Normalize"] if config.normalize else [])]
    if kinds != want:
        raise Unsupported(f"the loaded model is {kinds}, its modules.json says {want}")
    loaded = model[1].pooling_mode
    if loaded != config.pooling:
        raise Unsupported(f"the loaded Pooling mode is {loaded!r}, its config says {config.pooling!r}")
    dense = [m for m in model if type(m).__name__ == "Dense"]
    return Embedder(model[0].auto_model, config.pooling, dense).eval()


def export_fp32(model: SentenceTransformer, config: StConfig, path: Path) -> tuple[tuple[str, ...], int]:
    """Write the fp32 graph to path; returns its input names and output width."""
    module = embedder(model, config)
    names = model_inputs(model)
    batch = model.tokenizer(SAMPLE, padding=True, return_tensors="pt")
    args = tuple(batch[name] for name in names)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        width = module(*args).shape[-1]
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(names),
            output_names=[OUTPUT],
            dynamic_axes={**dynamic, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    return names, int(width)
