"""A real browser against the image: Debian's chromium in the test container, for tests/docs/ (offline docs)."""

import dagger

from . import testing
from .toolchain import with_apt


def with_chromium(ctr: dagger.Container) -> dagger.Container:
    """Debian's chromium package (headless use: no recommended extras)."""
    return ctr.with_(with_apt("chromium")).with_exec(["chromium", "--version"])


async def docs_check(tools: dagger.Container, source: dagger.Directory, model: dagger.Directory,
                     image: dagger.Container, served: dict[str, str]) -> str:
    """tests/docs/ in the test runner with chromium (installed before the source is added, so a code change
    does not install it again), against ``image`` running as a service."""
    ctr = testing.runner(tools.with_(with_chromium), source, model)
    return await testing.pytest(testing.with_service(ctr, image, served), "tests/docs")
