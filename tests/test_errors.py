"""Bad input gets a clear 4xx naming the limit or the fix, and the service keeps serving."""

from __future__ import annotations

import pytest

LONG_TOKENS = "word " * 300  # ~300 tokens: over 256, well under max_text_chars
OK = {"inputs": ["still alive"]}


async def _still_serving(client) -> None:
    assert (await client.get("/ready")).status_code == 200
    r = await client.post("/embed", json=OK)
    assert r.status_code == 200 and len(r.json()["embeddings"][0]) == 384


# (path, body (dict = JSON, str = raw bytes), status, substrings of the message)
CASES = [
    ("/embed", {"inputs": []}, 422, ["inputs", "at least one text"]),
    ("/embed", {"inputs": ""}, 422, ["inputs", "empty string"]),
    ("/embed", {"inputs": ["fine", ""]}, 422, ["inputs[1]", "empty string"]),
    ("/embed", {"inputs": 5}, 422, ["inputs must be a string or a list of strings"]),
    ("/embed", {"inputs": ["a", 3]}, 422, ["inputs", "token ids are not accepted"]),
    ("/embed", {"inputs": {"text": "a"}}, 422, ["inputs must be a string or a list of strings, got dict"]),
    ("/embed", {"inputs": ["a", None]}, 422, ["inputs[1] must be a string, got null"]),
    ("/embed", {"inputs": None}, 422, ["inputs must be a string or a list of strings, got null"]),
    ("/embed", {"inputs": "a", "normalize": "maybe"}, 422, ["normalize"]),
    ("/embed", {"text": "a"}, 422, ["inputs", "Field required"]),
    ("/embed", ["a", "b"], 422, ["must be a JSON object"]),
    ("/embed", '{"inputs": ["unterminated', 400, ["Malformed JSON"]),
    ("/embed", "", 422, ["body is missing"]),
    ("/embed", {"inputs": ["x"] * 257}, 413, ["257", "at most 256", "EMBEDDER_MAX_INPUTS"]),
    ("/embed", {"inputs": ["x" * 8193]}, 413, ["inputs[0]", "8193", "8192", "EMBEDDER_MAX_TEXT_CHARS"]),
    ("/embed", {"inputs": LONG_TOKENS, "truncate": False}, 413, ["inputs is", "256 tokens", "truncate"]),
    ("/embed", {"inputs": ["ok", LONG_TOKENS], "truncate": False}, 413, ["inputs[1]", "256 tokens"]),
    ("/similarity", {"source": "a", "targets": []}, 422, ["targets", "at least one text"]),
    ("/similarity", {"source": "", "targets": ["a"]}, 422, ["source", "empty string"]),
    ("/similarity", {"source": "a", "targets": "b"}, 422, ["targets must be a list of strings"]),
    ("/similarity", {"source": ["a"], "targets": ["b"]}, 422, ["source must be a string"]),
    ("/similarity", {"source": "a", "targets": ["b"] * 257}, 413, ["at most 256", "EMBEDDER_MAX_INPUTS"]),
    ("/similarity", {"source": "a" * 9000, "targets": ["b"]}, 413, ["source", "8192"]),
    (
        "/similarity",
        {"source": LONG_TOKENS, "targets": ["b"], "truncate": False},
        413,
        ["source is", "256 tokens"],
    ),
]


async def check_bad_input(client, path, body, status, needles) -> None:
    """POST one CASES entry and check its status and message (shared with tests/integration)."""
    if isinstance(body, str):
        r = await client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = await client.post(path, json=body)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    for needle in needles:
        assert needle in detail, detail


@pytest.mark.parametrize(("path", "body", "status", "needles"), CASES)
async def test_bad_input(client, path, body, status, needles):
    await check_bad_input(client, path, body, status, needles)
    await _still_serving(client)


OPENAI_CASES = [
    (
        {"model": "text-embedding-3-small", "input": "a"},
        404,
        ["text-embedding-3-small", "sentence-transformers/all-MiniLM-L6-v2"],
        "model",
    ),
    ({"model": "all-MiniLM-L6-v2", "input": []}, 422, ["input", "at least one text"], "input"),
    ({"model": "all-MiniLM-L6-v2", "input": ""}, 422, ["empty string"], "input"),
    ({"model": "all-MiniLM-L6-v2", "input": [[101, 102]]}, 422, ["token ids"], "input"),
    ({"model": "all-MiniLM-L6-v2"}, 422, ["input", "Field required"], "input"),
    (
        {"model": "all-MiniLM-L6-v2", "input": "a", "encoding_format": "int8"},
        422,
        ["encoding_format"],
        "encoding_format",
    ),
    ({"model": "all-MiniLM-L6-v2", "input": "a", "dimensions": 128}, 400, ["384"], "dimensions"),
    ({"model": "all-MiniLM-L6-v2", "input": ["x"] * 300}, 413, ["at most 256"], "input"),
    ({"model": "all-MiniLM-L6-v2", "input": LONG_TOKENS, "truncate": False}, 413, ["256 tokens"], "input"),
]


@pytest.mark.parametrize(("body", "status", "needles", "param"), OPENAI_CASES)
async def test_openai_route_errors_use_openai_envelope(client, body, status, needles, param):
    r = await client.post("/v1/embeddings", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] in ("invalid_request_error", "server_error")
    assert error["param"] == param
    for needle in needles:
        assert needle in error["message"], error
    await _still_serving(client)


async def test_openai_malformed_json(client):
    r = await client.post(
        "/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "Malformed JSON" in r.json()["error"]["message"]
    await _still_serving(client)


async def test_body_without_json_content_type(client):
    r = await client.post("/embed", content=b'{"inputs": "a"}', headers={"content-type": "text/plain"})
    assert r.status_code == 422
    assert "Content-Type: application/json" in r.json()["detail"]
    await _still_serving(client)


async def test_unknown_route_and_wrong_method(client):
    r = await client.get("/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = await client.get("/embed")
    assert r.status_code == 405
    await _still_serving(client)


async def test_exactly_256_tokens_is_accepted_without_truncation(client):
    # [CLS] + 254 x "word" + [SEP] = 256 tokens
    r = await client.post("/embed", json={"inputs": "word " * 254, "truncate": False})
    assert r.status_code == 200, r.text
    r = await client.post("/embed", json={"inputs": "word " * 255, "truncate": False})
    assert r.status_code == 413 and "257 tokens" in r.json()["detail"]
