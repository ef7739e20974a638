"""Read a sentence-transformers model's own configuration files and refuse what the export cannot carry.

Supported pipelines (modules.json): Transformer, Pooling (one mode), any number of Dense, optional
Normalize last. Standard library only: it runs before torch loads the model, so a refusal is quick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("mean", "cls", "max", "lasttoken", "mean_sqrt_len_tokens", "weightedmean")
# The legacy boolean keys, in the order sentence-transformers concatenates their outputs.
LEGACY_MODES = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
FEATURE = "sentence_embedding"  # the feature Dense and Normalize must read and write


class Unsupported(ValueError):
    """The model's configuration asks for something the export cannot put in the graph or embedding.json."""


@dataclass(frozen=True)
class StConfig:
    """What the export needs from the files: the pipeline's shape, token limit and prompts."""

    pooling: str
    dense: tuple[str, ...]  # folders of the Dense modules, in order
    normalize: bool
    max_seq_length: int | None  # sentence_bert_config.json's, None when it sets none
    lowercase: bool  # sentence_bert_config.json's do_lower_case: lowercasing tokenizer.json may lack
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


def read(snapshot: Path) -> StConfig:
    """The configuration of the model in snapshot; Unsupported naming the file and setting it cannot export."""
    root = Path(snapshot)
    modules = _json(root, "modules.json")
    if not isinstance(modules, list):
        raise Unsupported("modules.json is not a list of modules")
    kinds = [_kind(m) for m in modules]
    shape = "Transformer, Pooling, Dense (zero or more), Normalize (optional, last)"
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Dense" for k in kinds[2:-1]) or (
        len(kinds) > 2 and kinds[-1] not in ("Dense", "Normalize")
    ):
        listed = ", ".join(str(m.get("type")) for m in modules)
        raise Unsupported(f"modules.json lists {listed}; the export supports the pipeline {shape}")
    paths = [str(m.get("path", "")) for m in modules]
    transformer = _json(root, _join(paths[0], "sentence_bert_config.json"), missing={})
    _check_transformer(transformer, paths[0])
    for kind, path in zip(kinds[2:], paths[2:]):
        conf = _json(root, _join(path, "config.json"), missing={})
        _check_feature(conf, kind, path)
    st = _json(root, "config_sentence_transformers.json", missing={})
    if st.get("model_type", "SentenceTransformer") != "SentenceTransformer":
        raise Unsupported(f"config_sentence_transformers.json: model_type {st['model_type']!r}; "
                          "the export supports SentenceTransformer (dense embedding) models")
    prompts = st.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise Unsupported(f"config_sentence_transformers.json: prompts must map names to texts, got {prompts!r}")
    default = st.get("default_prompt_name") or None
    if default is not None and default not in prompts:
        raise Unsupported(f"config_sentence_transformers.json: default_prompt_name {default!r} is not in prompts")
    max_len = transformer.get("max_seq_length")
    return StConfig(
        pooling=pooling_mode(_json(root, _join(paths[1], "config.json")), paths[1]),
        dense=tuple(p for k, p in zip(kinds, paths) if k == "Dense"),
        normalize=kinds[-1] == "Normalize",
        max_seq_length=int(max_len) if max_len is not None else None,
        lowercase=bool(transformer.get("do_lower_case", False)),
        prompts=dict(prompts),
        default_prompt_name=default,
    )


def pooling_mode(config: dict, path: str = "1_Pooling") -> str:
    """The single pooling mode of a Pooling config (pooling_mode, or the legacy pooling_mode_* booleans)."""
    where = _join(path, "config.json")
    if config.get("include_prompt", True) is False:
        raise Unsupported(
            f"{where} sets include_prompt: false (prompt tokens left out of pooling), which the export does not "
            "support: the service prepends prompts as text and pools over every token. Set "
            f'"include_prompt": true in {where} (if the model tolerates it) or choose another model'
        )
    mode = config.get("pooling_mode")
    if mode is None:
        mode = [m for key, m in LEGACY_MODES.items() if config.get(key)] or ["mean"]
    modes = [mode] if isinstance(mode, str) else list(mode)
    if len(modes) != 1:
        raise Unsupported(f"{where} concatenates pooling modes {modes}; the export supports one mode of {MODES}")
    if modes[0] not in MODES:
        raise Unsupported(f"{where}: pooling mode {modes[0]!r} is not one of {MODES}")
    return modes[0]


def _kind(module: dict) -> str:
    """Transformer, Pooling, Dense or Normalize for sentence-transformers' own classes, else the type."""
    kind = str(module.get("type", ""))
    name = kind.rsplit(".", 1)[-1]
    if kind.startswith("sentence_transformers.") and name in ("Transformer", "Pooling", "Dense", "Normalize"):
        return name
    return kind


def _check_transformer(config: dict, path: str) -> None:
    where = _join(path, "sentence_bert_config.json")
    task = config.get("transformer_task", "feature-extraction")
    if task != "feature-extraction":
        raise Unsupported(f"{where}: transformer_task {task!r}; the export supports feature-extraction only")
    if config.get("module_output_name", "token_embeddings") != "token_embeddings":
        raise Unsupported(f"{where}: module_output_name {config['module_output_name']!r}; the export pools token_embeddings")
    if config.get("modality_config") not in (None, {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}):
        raise Unsupported(f"{where}: a custom modality_config; the export pools the text last_hidden_state only")


def _check_feature(config: dict, kind: str, path: str) -> None:
    for key in ("module_input_name", "module_output_name"):
        if config.get(key, FEATURE) not in (FEATURE, None):
            raise Unsupported(f"{_join(path, 'config.json')}: {kind} {key} {config[key]!r}; the export needs {FEATURE!r}")


def _json(root: Path, rel: str, missing: object = None):
    path = root / rel
    if not path.is_file():
        if missing is not None:
            return missing
        raise Unsupported(f"{rel} is missing from {root}: not a sentence-transformers model directory")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise Unsupported(f"{rel} is not valid JSON: {e}") from None


def _join(folder: str, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder.strip("/") else name
