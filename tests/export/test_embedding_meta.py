"""embedding.json: written and read back, and refused with the file and the fix named when unusable."""

from __future__ import annotations

import json

import pytest

from app.embedding_meta import NAME, EmbeddingMeta, EmbeddingMetaError

MINILM = {
    "format": 1, "dimensions": 384, "pooling": "mean", "dense_layers": 0, "normalize": True, "max_seq_length": 256,
    "inputs": ["input_ids", "attention_mask", "token_type_ids"], "prompts": {}, "default_prompt_name": None,
    "pad_token_id": 0,
}


def test_round_trip_keeps_the_exact_shape(tmp_path):
    meta = EmbeddingMeta.parse(MINILM)
    assert meta.write(tmp_path) == tmp_path / NAME == tmp_path / "embedding.json"
    assert json.loads((tmp_path / NAME).read_text()) == MINILM
    assert list(json.loads((tmp_path / NAME).read_text())) == list(MINILM)  # field order too
    assert EmbeddingMeta.read(tmp_path) == meta and meta.inputs == tuple(MINILM["inputs"])


def test_prompts_round_trip(tmp_path):
    body = MINILM | {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": "query"}
    EmbeddingMeta.parse(body).write(tmp_path)
    meta = EmbeddingMeta.read(tmp_path)
    assert (meta.prompts, meta.default_prompt_name) == (body["prompts"], "query")


def test_missing_file_names_it_and_the_fix(tmp_path):
    with pytest.raises(EmbeddingMetaError, match=r"embedding.json is missing.*re-export"):
        EmbeddingMeta.read(tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    ({"format": 2}, "format 2"),
    ({"dimensions": 0}, "dimensions must be >= 1"),
    ({"normalize": 1}, "normalize must be a bool"),
    ({"inputs": ["attention_mask", "input_ids"]}, "must start with input_ids, attention_mask"),
    ({"default_prompt_name": "query"}, "default_prompt_name 'query' is not one of prompts"),
    ({"prompts": {"query": 3}}, "prompts must be an object"),
])
def test_invalid_content_is_refused(tmp_path, change, message):
    (tmp_path / NAME).write_text(json.dumps(MINILM | change))
    with pytest.raises(EmbeddingMetaError, match=message):
        EmbeddingMeta.read(tmp_path)
    (tmp_path / NAME).unlink()
    with pytest.raises((TypeError, ValueError), match=message):  # the export cannot write it either
        EmbeddingMeta(**(MINILM | change)).write(tmp_path)
    assert not (tmp_path / NAME).exists()


def test_unparseable_file_is_refused(tmp_path):
    (tmp_path / NAME).write_text("{")
    with pytest.raises(EmbeddingMetaError, match="cannot be read"):
        EmbeddingMeta.read(tmp_path)
