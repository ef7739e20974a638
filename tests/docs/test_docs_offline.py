"""/docs and /redoc render in a real headless Chromium that can reach the service and nothing else
(`dagger call docs-check`: the image runs as a service, EMBEDDER_BASE_URL points at it, Debian's chromium is
installed in the test container). Without EMBEDDER_BASE_URL every test is skipped.

The block: Chromium's resolver maps every host name but the service's to "not found", and uses no proxy, so a
page that needed a CDN would stay blank. The control tests prove the rule is in force: a CDN URL ends on
Chromium's error page, and a MAP rule (no network involved) does redirect a CDN host name. The net log of each
render lists every URL requested and who asked: the page must ask its own origin only (but for /redoc's one
cosmetic logo, see REDOC_ATTRIBUTION_LOGO); the browser's own background traffic is blocked just the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

BASE_URL = os.environ.get("EMBEDDER_BASE_URL", "").rstrip("/")
pytestmark = pytest.mark.skipif(
    not BASE_URL, reason="needs a running image: set EMBEDDER_BASE_URL (dagger call docs-check)"
)

#: The one request to another origin /redoc makes (redoc 2.x, unconditionally): cosmetic, and it fails quietly.
REDOC_ATTRIBUTION_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
CDN_CSS = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
#: Simulated milliseconds the page may run (virtual time stands still while a request is in flight).
VIRTUAL_TIME_MS = 20_000
TIMEOUT_S = 120
OPERATIONS = ("/embed", "/v1/embeddings")


@dataclass
class Render:
    dom: str
    requests: dict[str, str]  # every URL in the net log -> the origin that asked for it ("" for the browser)
    log: str  # Chromium's stderr, for failure messages

    def by_page(self) -> list[str]:
        """The URLs the page itself asked for: its origin is their initiator."""
        return [url for url, initiator in self.requests.items() if initiator == origin()]

    def foreign(self) -> list[str]:
        """What the page asked for from another origin."""
        return [url for url in self.by_page() if origin(url) != origin()]


def origin(url: str = BASE_URL) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def service_host() -> str:
    host = urlsplit(BASE_URL).hostname
    assert host, BASE_URL
    return host


def block_rules() -> str:
    return f"MAP * ~NOTFOUND , EXCLUDE {service_host()}"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed (the docs-check pipeline installs Debian's chromium package)"
    return found


def flags(profile: Path, net_log: Path, resolver_rules: str) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",  # through a proxy the rules would block only the proxy's name, not the page's hosts
        f"--host-resolver-rules={resolver_rules}",
        f"--user-data-dir={profile}",
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--dump-dom",
    ]


def render(url: str, tmp_path: Path, resolver_rules: str | None = None) -> Render:
    """The DOM after the page ran, and every URL Chromium requested meanwhile."""
    net_log = tmp_path / "net-log.json"
    cmd = [chromium(), *flags(tmp_path / "profile", net_log, resolver_rules or block_rules()), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{done.stderr[-4000:]}"
    return Render(done.stdout, requests(net_log), done.stderr[-4000:])


def requests(net_log: Path) -> dict[str, str]:
    """Every "url" parameter of a net log event, with the "initiator" seen with it (a log cut short at exit
    lacks its closing brackets). The browser's own traffic (update checks, time, accounts) has none."""
    text = net_log.read_text(encoding="utf-8").rstrip().rstrip(",")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        log = json.loads(text + "]}")
    seen: dict[str, str] = {}
    for event in log.get("events", []):
        params = event.get("params") or {}
        url, initiator = params.get("url"), params.get("initiator")
        if isinstance(url, str):
            seen[url] = seen.get(url) or (initiator if isinstance(initiator, str) else "")
    return seen


def test_swagger_ui_renders_the_operations_offline(tmp_path):
    page = render(f"{BASE_URL}/docs", tmp_path)
    assert 'class="swagger-ui' in page.dom and "opblock" in page.dom, page.dom[-3000:] + page.log
    for path in OPERATIONS:
        assert f'data-path="{path}"' in page.dom, f"no operation {path} in the rendered /docs"
    assert page.dom.count('class="opblock opblock-') >= len(OPERATIONS)
    assert "Failed to load API definition" not in page.dom
    for path in ("/static-offline-docs/swagger-ui-bundle.js", "/static-offline-docs/swagger-ui.css", "/openapi.json"):
        assert BASE_URL + path in page.by_page(), page.requests
    assert not page.foreign(), f"/docs asked other origins for {page.foreign()}"


def test_redoc_renders_the_operations_offline(tmp_path):
    page = render(f"{BASE_URL}/redoc", tmp_path)
    assert page.dom.count('data-section-id="tag/') + page.dom.count('data-section-id="operation/') >= len(
        OPERATIONS
    ), page.dom[-3000:] + page.log
    for path in OPERATIONS:
        assert f">{path}<" in page.dom, f"no operation {path} in the rendered /redoc"
    assert f"{BASE_URL}/static-offline-docs/redoc.standalone.js" in page.by_page(), page.requests
    assert f"{BASE_URL}/openapi.json" in page.by_page(), page.requests
    # Redoc's "API docs by Redocly" footer always asks its CDN for a logo; offline that image removes itself.
    assert set(page.foreign()) <= {REDOC_ATTRIBUTION_LOGO}, f"/redoc asked other origins for {page.foreign()}"
    assert 'alt="redocly logo"' not in page.dom, "the blocked attribution logo still shows (as a broken image)"


def test_control_a_cdn_url_does_not_load(tmp_path):
    """The same flags on the CDN Swagger UI normally comes from: Chromium's error page, no stylesheet."""
    page = render(CDN_CSS, tmp_path)
    assert "ERR_NAME_NOT_RESOLVED" in page.dom + page.log, page.dom[-3000:] + page.log
    assert ".swagger-ui" not in page.dom


def test_control_the_resolver_rules_are_in_force(tmp_path):
    """No network involved: MAP sends the CDN's host name to the service, so its /health answers there."""
    port = urlsplit(BASE_URL).port or 80
    page = render(f"http://cdn.jsdelivr.net:{port}/health", tmp_path, f"MAP cdn.jsdelivr.net {service_host()}")
    assert '{"status":"ok"}' in page.dom, page.dom[-3000:] + page.log
