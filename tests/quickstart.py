"""The README's quickstart as data: the API key `docker run` sets, the curl request, the openai and LangChain
snippets and the MCP client configuration, read from its code blocks so that the tests send what a reader
copies (tests/integration/test_quickstart.py against the built image; tests/test_docs_layout.py checks the
shapes without one)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

README = Path(__file__).resolve().parent.parent / "README.md"
#: Where the quickstart's service listens; the tests put the service under test in its place.
SHOWN_URL = "http://localhost:8000"


@dataclass(frozen=True)
class Curl:
    path: str
    headers: dict[str, str]
    body: dict


@dataclass(frozen=True)
class Quickstart:
    api_key: str
    curl: Curl
    openai: str  # Python source that leaves the embedding in `vector`
    langchain: str  # likewise
    mcp_url: str
    mcp_headers: dict[str, str]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def parse_curl(command: str) -> Curl:
    args = shlex.split(command.replace("\\\n", " "))
    assert args[0] == "curl", args
    (url,) = [a for a in args if a.startswith(("localhost:", SHOWN_URL))]
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
    body = json.loads(args[args.index("-d") + 1])
    return Curl(path=urlsplit(url if "://" in url else f"http://{url}").path, headers=headers, body=body)


def read(text: str | None = None) -> Quickstart:
    text = README.read_text() if text is None else text
    section = text.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    sh, python, configs = blocks(section, "sh"), blocks(section, "python"), blocks(section, "json")
    (run,) = [b for b in sh if "docker run" in b]
    (curl,) = [b for b in sh if b.startswith("curl ")]
    (openai,) = [b for b in python if "from openai import" in b]
    (langchain,) = [b for b in python if "from langchain_openai import" in b]
    ((server,),) = [json.loads(b)["mcpServers"].values() for b in configs]
    return Quickstart(
        api_key=re.search(r"EMBEDDER_API_KEYS=(\S+)", run).group(1),
        curl=parse_curl(curl),
        openai=openai,
        langchain=langchain,
        mcp_url=server["url"],
        mcp_headers=server["headers"],
    )


def aimed_at(source: str, base_url: str, model: str) -> str:
    """A snippet sent to ``base_url`` instead of localhost:8000, asking for ``model`` when the image was built
    with another model than the quickstart's."""
    source = source.replace(SHOWN_URL, base_url.rstrip("/"))
    if model.rsplit("/", 1)[-1] != "all-MiniLM-L6-v2":
        source = source.replace('"all-MiniLM-L6-v2"', json.dumps(model))
    return source
