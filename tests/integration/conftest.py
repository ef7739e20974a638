"""Integration tests run against a running image: `dagger call integration-tests` binds the built image as a
service and sets EMBEDDER_BASE_URL, EMBEDDER_EXPECT_ENGINE and EMBEDDER_TEST_MODEL_DIR (for reference.json)."""

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

BASE_URL = os.environ.get("EMBEDDER_BASE_URL")


def pytest_collection_modifyitems(items):
    if not BASE_URL:
        skip = pytest.mark.skip(reason="needs a running image: set EMBEDDER_BASE_URL (dagger call integration-tests)")
        for item in items:
            if "integration" in item.path.parts:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def base_url() -> str:
    return BASE_URL


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads((Path(os.environ["EMBEDDER_TEST_MODEL_DIR"]) / "reference.json").read_text())


@pytest_asyncio.fixture(scope="session")
async def client(base_url) -> AsyncIterator[httpx.AsyncClient]:
    """Overrides the in-process client of tests/svc_support.py: here every request crosses the network."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as c:
        yield c
