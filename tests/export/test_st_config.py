"""Reading a sentence-transformers model's configuration files (standard library only: runs without torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.export.st_config import Unsupported, pooling_mode, read

TRANSFORMER = "sentence_transformers.models.Transformer"
POOLING = "sentence_transformers.models.Pooling"
DENSE = "sentence_transformers.models.Dense"
NORMALIZE = "sentence_transformers.models.Normalize"


def model_dir(root: Path, modules: list[str], pooling: dict | None = None, **files: dict) -> Path:
    """A model directory with modules.json for the given types (folders N_Kind) and the given JSON files."""
    entries = [
        {"idx": i, "name": str(i), "path": "" if i == 0 else f"{i}_{t.rsplit('.', 1)[-1]}", "type": t}
        for i, t in enumerate(modules)
    ]
    (root / "modules.json").write_text(json.dumps(entries))
    for entry in entries[1:]:
        (root / entry["path"]).mkdir()
        conf = (pooling or {"pooling_mode": "mean"}) if entry["type"] == POOLING else {}
        (root / entry["path"] / "config.json").write_text(json.dumps(conf))
    for name, body in files.items():
        (root / f"{name}.json").write_text(json.dumps(body))
    return root


def test_minilm_shape_with_legacy_pooling_keys(tmp_path):
    legacy = {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
              "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}
    conf = read(model_dir(tmp_path, [TRANSFORMER, POOLING, NORMALIZE], legacy,
                          sentence_bert_config={"max_seq_length": 256, "do_lower_case": False}))
    assert (conf.pooling, conf.dense, conf.normalize, conf.max_seq_length) == ("mean", (), True, 256)
    assert (conf.prompts, conf.default_prompt_name, conf.lowercase) == ({}, None, False)


@pytest.mark.parametrize(("config", "mode"), [
    ({"pooling_mode_cls_token": True}, "cls"),
    ({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}, "max"),
    ({"pooling_mode_lasttoken": True}, "lasttoken"),
    ({"pooling_mode_weightedmean_tokens": True}, "weightedmean"),
    ({"pooling_mode_mean_sqrt_len_tokens": True}, "mean_sqrt_len_tokens"),
    ({"pooling_mode_cls_token": False}, "mean"),  # none set: sentence-transformers' default
    ({"pooling_mode": "lasttoken", "pooling_mode_cls_token": True}, "lasttoken"),  # the new key wins
    ({"pooling_mode": ["cls"]}, "cls"),
])
def test_pooling_modes(config, mode):
    assert pooling_mode(config) == mode


def test_concatenated_modes_are_refused():
    with pytest.raises(Unsupported, match="concatenates pooling modes"):
        pooling_mode({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True})


def test_include_prompt_false_is_refused_naming_the_fix(tmp_path):
    root = model_dir(tmp_path, [TRANSFORMER, POOLING], {"pooling_mode": "mean", "include_prompt": False})
    with pytest.raises(Unsupported, match=r'1_Pooling/config.json sets include_prompt: false.*Set "include_prompt": true'):
        read(root)


def test_dense_layers_prompts_and_the_limit(tmp_path):
    root = model_dir(tmp_path, [TRANSFORMER, POOLING, DENSE, DENSE],
                     config_sentence_transformers={"prompts": {"query": "query: ", "passage": "passage: "},
                                                   "default_prompt_name": "query"})
    conf = read(root)
    assert (conf.dense, conf.normalize, conf.max_seq_length) == (("2_Dense", "3_Dense"), False, None)
    assert (conf.prompts, conf.default_prompt_name) == ({"query": "query: ", "passage": "passage: "}, "query")


@pytest.mark.parametrize(("modules", "message"), [
    ([TRANSFORMER, NORMALIZE], "modules.json lists"),
    ([TRANSFORMER, POOLING, NORMALIZE, DENSE], "modules.json lists"),
    ([TRANSFORMER, POOLING, "sentence_transformers.models.LayerNorm"], "LayerNorm"),
    ([TRANSFORMER, POOLING, "my_package.Dense"], "my_package.Dense"),
])
def test_other_pipelines_are_refused(tmp_path, modules, message):
    with pytest.raises(Unsupported, match=message):
        read(model_dir(tmp_path, modules))


def test_other_model_types_and_tasks_are_refused(tmp_path):
    sparse, masked = tmp_path / "sparse", tmp_path / "masked"
    sparse.mkdir(), masked.mkdir()
    model_dir(sparse, [TRANSFORMER, POOLING], config_sentence_transformers={"model_type": "SparseEncoder"})
    with pytest.raises(Unsupported, match="model_type 'SparseEncoder'"):
        read(sparse)
    model_dir(masked, [TRANSFORMER, POOLING], sentence_bert_config={"transformer_task": "fill-mask"})
    with pytest.raises(Unsupported, match="transformer_task 'fill-mask'"):
        read(masked)


def test_a_default_prompt_missing_from_prompts_is_refused(tmp_path):
    root = model_dir(tmp_path, [TRANSFORMER, POOLING],
                     config_sentence_transformers={"prompts": {"query": "q: "}, "default_prompt_name": "passage"})
    with pytest.raises(Unsupported, match="default_prompt_name 'passage'"):
        read(root)


def test_a_directory_without_modules_json_is_refused(tmp_path):
    with pytest.raises(Unsupported, match="modules.json is missing"):
        read(tmp_path)
