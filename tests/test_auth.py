"""API keys: the key ring on its own, then a real server with keys, through the openai client, the MCP
client and raw requests (missing, wrong, rotated key)."""

from __future__ import annotations

import time

import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from svc_support import server_process

from app.auth import RECHECK_S, KeyRing

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OLD, NEW, INLINE = "sk-old-0123456789", "sk-new-9876543210", "sk-inline-5555"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ring_accepts_its_keys_only(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# team A\n{OLD}\n\n{NEW}  # added for rotation\n")
    ring = KeyRing(f" {INLINE} ,", keys)
    assert ring.enabled
    assert all(ring.accepts(k) for k in (OLD, NEW, INLINE))
    assert not any(ring.accepts(k) for k in ("", None, OLD[:-1], OLD + "x", "# team A", INLINE.upper()))
    assert not KeyRing().enabled and not KeyRing().accepts(OLD)


def test_ring_rereads_a_changed_file_and_keeps_old_keys_on_a_bad_one(tmp_path):
    keys, clock = tmp_path / "keys", Clock()
    keys.write_text(OLD + "\n")
    ring = KeyRing("", keys, clock=clock)
    keys.write_text(NEW + "\n")
    assert ring.accepts(OLD)  # not re-read before RECHECK_S
    clock.now += RECHECK_S
    assert ring.accepts(NEW) and not ring.accepts(OLD)
    keys.write_text("# emptied by mistake\n")
    clock.now += RECHECK_S
    assert ring.accepts(NEW)  # a file without keys never locks everyone out
    keys.unlink()
    clock.now += RECHECK_S
    assert ring.accepts(NEW)


@pytest.mark.parametrize(("content", "needle"), [(None, "cannot be read"), ("# nothing\n", "holds no key")])
def test_unusable_keys_file_fails_at_start(tmp_path, content, needle):
    keys = tmp_path / "keys"
    if content is not None:
        keys.write_text(content)
    with pytest.raises(ValueError, match=needle):
        KeyRing("", keys)


@pytest.fixture(scope="module")
def keyed(model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed")
    keys = folder / "keys"
    keys.write_text(OLD + "\n")
    with server_process(
        model_dir, folder / "server.log", EMBEDDER_API_KEYS_FILE=str(keys), EMBEDDER_API_KEYS=INLINE
    ) as server:
        server.wait_ready()
        yield server, keys


def test_probes_and_docs_are_open_data_routes_are_not(keyed):
    server, _ = keyed
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        for path in ("/health", "/ready", "/metrics", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        missing = c.post("/embed", json={"inputs": ["hi"]})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["code"] == "invalid_api_key" and "Authorization: Bearer" in missing.json()["detail"]
        wrong = c.post("/v1/embeddings", json={"model": MODEL, "input": "hi"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key" and "nope" not in wrong.text
        assert c.post("/similarity", json={"source": "a", "targets": ["b"]}).status_code == 401
        assert c.post("/mcp", json={}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Basic " + OLD}).status_code == 401
        ok = c.post("/embed", json={"inputs": ["hi"]}, headers={"Authorization": f"Bearer {INLINE}"})
        assert ok.status_code == 200 and len(ok.json()["embeddings"][0]) == 384
        assert "embedder_unauthorized_requests_total 5.0" in c.get("/metrics").text
    assert OLD not in server.logs() and INLINE not in server.logs() and "nope" not in server.logs()


def test_openai_client_with_and_without_a_key(keyed):
    server, _ = keyed
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=OLD, max_retries=0) as good:
        res = good.embeddings.create(model=MODEL, input=["The cat sits on the mat."])
        assert len(res.data[0].embedding) == 384
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.embeddings.create(model=MODEL, input="x")
    assert info.value.code == "invalid_api_key"


async def test_mcp_client_with_a_key(keyed):
    server, _ = keyed
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {OLD}"}, timeout=30)
    async with http, Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as c:
        result = await c.call_tool("embed", {"inputs": ["hello"]})
    assert not result.is_error


def test_a_rotated_key_file_takes_effect_without_a_restart(keyed):
    server, keys = keyed
    keys.write_text(f"{NEW}\n")
    deadline = time.monotonic() + RECHECK_S + 10
    with httpx.Client(base_url=server.base_url, timeout=30) as c:
        body = {"inputs": ["rotate"]}
        while c.post("/embed", json=body, headers={"Authorization": f"Bearer {NEW}"}).status_code != 200:
            assert time.monotonic() < deadline, "the new key was never accepted"
            time.sleep(0.2)
        assert c.post("/embed", json=body, headers={"Authorization": f"Bearer {OLD}"}).status_code == 401
