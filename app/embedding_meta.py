"""``embedding.json``: what the service needs to know about an exported model, written by the export.

Standard library only (the service reads it, the export writes it). Format 1::

    {"format": 1, "dimensions": 384, "pooling": "mean", "dense_layers": 0, "normalize": true,
     "max_seq_length": 256, "inputs": ["input_ids", "attention_mask", "token_type_ids"],
     "prompts": {}, "default_prompt_name": null, "pad_token_id": 0}

``dimensions`` is the width of the graph's ``sentence_embedding`` (after the Dense layers); that output
is not normalized, ``normalize`` says whether the model's pipeline ends with a Normalize module.
``inputs`` are the graph's int64 inputs in order; ``prompts`` are prepended to the text as is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

NAME = "embedding.json"
FORMAT = 1
#: The fix for a model directory that does not hold what the service needs.
REEXPORT = "re-export the model directory with `dagger call model`"


class EmbeddingMetaError(ValueError):
    """embedding.json is missing or does not hold format 1."""


@dataclass(frozen=True)
class EmbeddingMeta:
    format: int
    dimensions: int
    pooling: str
    dense_layers: int
    normalize: bool
    max_seq_length: int
    inputs: tuple[str, ...]
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    pad_token_id: int = 0

    @classmethod
    def read(cls, model_dir: Path) -> EmbeddingMeta:
        """The metadata of model_dir; EmbeddingMetaError naming the file and the fix when it is unusable."""
        path = Path(model_dir) / NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EmbeddingMetaError(f"{path} is missing (exports before format {FORMAT} lack it); {REEXPORT}") from None
        except (OSError, ValueError) as exc:
            raise EmbeddingMetaError(f"{path} cannot be read ({exc}); {REEXPORT}") from None
        try:
            return cls.parse(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingMetaError(f"{path} is invalid: {exc}; {REEXPORT}") from None

    @classmethod
    def parse(cls, data: object) -> EmbeddingMeta:
        """The metadata of a decoded embedding.json; KeyError, TypeError or ValueError naming the field."""
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this service reads format {FORMAT}")
        default = data.get("default_prompt_name")
        meta = cls(
            format=FORMAT,
            dimensions=_int(data, "dimensions", 1),
            pooling=_typed(data, "pooling", str),
            dense_layers=_int(data, "dense_layers", 0),
            normalize=_typed(data, "normalize", bool),
            max_seq_length=_int(data, "max_seq_length", 1),
            inputs=tuple(_strings(data["inputs"], "inputs")),
            prompts=_prompts(data.get("prompts") or {}),
            default_prompt_name=None if default is None else _typed(data, "default_prompt_name", str),
            pad_token_id=_int(data, "pad_token_id", 0),
        )
        if meta.inputs[:2] != ("input_ids", "attention_mask") or len(set(meta.inputs)) != len(meta.inputs):
            raise ValueError(f"inputs {list(meta.inputs)} must start with input_ids, attention_mask (no repeats)")
        if meta.default_prompt_name is not None and meta.default_prompt_name not in meta.prompts:
            raise ValueError(f"default_prompt_name {meta.default_prompt_name!r} is not one of prompts {list(meta.prompts)}")
        return meta

    def to_dict(self) -> dict:
        return asdict(self) | {"inputs": list(self.inputs)}

    def write(self, model_dir: Path) -> Path:
        """Write model_dir/embedding.json (checked as read() checks it); returns its path."""
        body = self.to_dict()
        self.parse(body)
        path = Path(model_dir) / NAME
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def _typed(data: dict, key: str, kind: type) -> object:
    value = data[key]
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise TypeError(f"{key} must be a {kind.__name__}, got {value!r}")
    return value


def _int(data: dict, key: str, minimum: int) -> int:
    value = _typed(data, key, int)
    if value < minimum:
        raise ValueError(f"{key} must be >= {minimum}, got {value}")
    return value


def _strings(values: object, key: str) -> list[str]:
    if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"{key} must hold strings, got {values!r}")
    return list(values)


def _prompts(prompts: object) -> dict[str, str]:
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise TypeError(f"prompts must be an object of name -> text, got {prompts!r}")
    return dict(prompts)
