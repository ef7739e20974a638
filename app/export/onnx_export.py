"""Export the sentence-transformers model to ONNX (fp32) with mean pooling inside the graph."""

from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "sentence_embedding"
OPSET = 17


class MeanPooled(torch.nn.Module):
    """The transformer followed by attention-masked mean pooling; normalization stays in the service."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def check_pooling(model: SentenceTransformer) -> None:
    config = model[1].get_config_dict()
    legacy = {k: v for k, v in config.items() if k.startswith("pooling_mode_") and v}
    if config.get("pooling_mode", "mean") != "mean" or set(legacy) - {"pooling_mode_mean_tokens"}:
        raise ValueError(f"only mean pooling is exported; this model's pooling is {config}")


def export_fp32(model: SentenceTransformer, path: Path) -> Path:
    check_pooling(model)
    module = MeanPooled(model[0].auto_model).eval()
    batch = model[0].tokenizer(
        ["an example sentence", "a second, somewhat longer example sentence"], padding=True, return_tensors="pt"
    )
    args = tuple(batch[name] for name in INPUTS)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={**dynamic, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    return path
