"""README.md is a front page and docs/ holds the rest: nothing the README covered was dropped (each of its
headings lives on), every relative link and #anchor resolves (GitHub's anchor slugs), every page opens with
what its reader came for, and the quickstart has the shape tests/integration/test_quickstart.py sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from quickstart import SHOWN_URL, read

from app.routes import embeddings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

#: README.md's headings when it was 607 lines (commit 86030b2), before docs/ existed.
HEADINGS = [
    "embedder", "Prerequisites", "The two commands",
    "Pipeline options (constructor flags, before the function name)",
    "Service settings (environment, prefix `EMBEDDER_`)", "Scheduling, admission and sizing", "Embedding cache",
    "API keys", "Deploy", "Compose (one Docker host)", "Kubernetes", "Memory limit", "Release",
    "Same commit, same layers", "SBOM and licenses", "CI templates", "Use your own model",
    "Cold CI runners: a published base", "Layout", "Developing without Dagger", "Machines without registry access",
]
FENCED = re.compile(r"^```.*?^```\n", re.S | re.M)
HEADING = re.compile(r"^#{1,6} (.+?)\s*$", re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(page: Path) -> str:
    """The page without its code blocks (a `# comment` in a shell block is no heading)."""
    return FENCED.sub("", page.read_text())


def headings(page: Path) -> list[str]:
    return HEADING.findall(prose(page))


def slug(heading: str) -> str:
    """GitHub's anchor: the rendered text (link text, no code marks) in lower case, punctuation but - and _
    dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in headings(page):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)  # GitHub numbers repeats: x, x-1, x-2
        seen[base] = seen.get(base, 0) + 1
    return found


def test_slugs_are_githubs():
    assert slug("Service settings (environment, prefix `EMBEDDER_`)") == "service-settings-environment-prefix-embedder_"
    assert slug("Cold CI runners: a published base") == "cold-ci-runners-a-published-base"
    assert slug("Compose (one Docker host)") == "compose-one-docker-host"


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("heading", HEADINGS)
def test_every_heading_the_readme_had_lives_on(heading):
    assert any(heading in headings(page) for page in PAGES), f"no page has the heading {heading!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page):
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        assert linked.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        if anchor:
            assert linked.suffix == ".md" and anchor in anchors(linked), f"{page.name}: no #{anchor} in {path}"


def test_the_front_page_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose(README))}
    assert set(DOCS) <= linked, sorted(p.name for p in set(DOCS) - linked)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_each_page_opens_with_what_its_reader_came_for(page):
    """A title, then a paragraph of prose before the first section, table or code block."""
    title, *rest = [block for block in page.read_text().split("\n\n") if block.strip()]
    assert title.startswith("# ") and "\n" not in title.strip(), title
    assert rest and not rest[0].lstrip().startswith(("#", "|", "```", "-")), rest[:1]


def test_quickstart_has_the_shape_the_integration_tests_send():
    quick = read()
    bearer = f"Bearer {quick.api_key}"
    assert quick.curl.path in {route.path for route in embeddings.router.routes} and quick.curl.headers["Authorization"] == bearer
    assert quick.mcp_url == f"{SHOWN_URL}/mcp" and quick.mcp_headers == {"Authorization": bearer}
    for snippet in (quick.openai, quick.langchain):
        compile(snippet, "README.md", "exec")
        assert f'base_url="{SHOWN_URL}/v1"' in snippet and f'api_key="{quick.api_key}"' in snippet
        assert "vector = " in snippet
    assert "check_embedding_ctx_length=False" in quick.langchain
