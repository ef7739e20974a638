"""/docs and /redoc work offline: every script, style and icon they reference is served by the app itself
(fastapi-offline's pinned bundles under /static-offline-docs), and with API keys set they need no key.
tests/docs/ renders /docs in a real headless browser with every other host blocked (`dagger call docs-check`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
import pytest_asyncio
from svc_support import make_settings, running_app

from app.auth import OPEN_PREFIXES
from app.main import create_app

PAGES = ("/docs", "/redoc")
STATIC = "/static-offline-docs/"
KEY = "sk-docs-0123456789"
#: Content type (before any "; charset") by file suffix; .js is text/javascript or application/javascript.
CONTENT_TYPES = {
    ".css": {"text/css"},
    ".js": {"text/javascript", "application/javascript"},
    ".png": {"image/png"},
}


class References(HTMLParser):
    """Every URL an HTML page makes the browser load: src and href attributes, and <redoc spec-url>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = References()
    parser.feed(html)
    return parser.urls


def assets(html: str) -> list[str]:
    return [u for u in references(html) if u.startswith(STATIC)]


@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_reference_no_other_origin(client, page):
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?i)\bhttps?:|//cdn|fonts\.googleapis", r.text), r.text
    urls = references(r.text)
    assert urls, r.text
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} references {url!r}, not same-origin"
    assert any(u.endswith(".js") for u in assets(r.text)), f"{page} loads no script of its own: {urls}"


async def test_swagger_ui_loads_its_css_and_the_openapi_document(client):
    html = (await client.get("/docs")).text
    assert f"{STATIC}swagger-ui.css" in assets(html) and f"{STATIC}swagger-ui-bundle.js" in assets(html)
    assert "url: '/openapi.json'" in html
    assert "/openapi.json" in references((await client.get("/redoc")).text)


@pytest.mark.parametrize("page", PAGES)
async def test_every_referenced_asset_is_served_with_its_content_type(client, page):
    for url in assets((await client.get(page)).text):
        r = await client.get(url)
        assert r.status_code == 200, url
        kind = r.headers["content-type"].split(";")[0].strip()
        suffix = url[url.rfind(".") :]
        assert kind in CONTENT_TYPES[suffix], f"{url} served as {kind}"
        assert int(r.headers["content-length"]) == len(r.content) > 1000, url


async def test_swagger_bundle_is_swagger_ui_5(client):
    js = (await client.get(f"{STATIC}swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in js
    assert re.search(r'PACKAGE_VERSION:"5\.\d+\.\d+"', js), "not a swagger-ui 5.x bundle"


def test_the_static_prefix_is_the_mount_of_the_app(model_dir):
    app = create_app(make_settings(model_dir))
    mounts = {getattr(r, "path", None) for r in app.routes}
    assert all(p.rstrip("/") in mounts for p in OPEN_PREFIXES), (OPEN_PREFIXES, mounts)
    assert STATIC in OPEN_PREFIXES


# --- with API keys ------------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module")
async def keyed(model_dir) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(make_settings(model_dir, api_keys=KEY))) as c:
        yield c


@pytest.mark.parametrize("page", PAGES)
async def test_with_keys_the_docs_and_their_assets_need_none(keyed, page):
    r = await keyed.get(page)
    assert r.status_code == 200, r.text
    urls = assets(r.text)
    assert urls
    for url in urls:
        assert (await keyed.get(url)).status_code == 200, url
    assert (await keyed.get("/openapi.json")).status_code == 200


async def test_with_keys_embed_still_needs_one(keyed):
    body = {"inputs": ["hi"]}
    assert (await keyed.post("/embed", json=body)).status_code == 401
    wrong = await keyed.post("/embed", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = await keyed.post("/embed", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and len(ok.json()["embeddings"][0]) == 384


async def test_with_keys_only_the_static_prefix_is_open(keyed):
    """A path that merely starts like the prefix, or a missing asset, gets no free pass."""
    assert (await keyed.get("/static-offline-docs-x/swagger-ui.css")).status_code == 401
    assert (await keyed.get("/static-offline-docs")).status_code == 401
    assert (await keyed.get(f"{STATIC}no-such-file.js")).status_code == 404
