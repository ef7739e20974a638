"""Any sentence-transformers model: the export's own tests where torch is, and a tiny model that is not
all-MiniLM-L6-v2 (tests/export/tiny_models.py's SERVED), taken from disk, locked, built into an image and
served (the HF-compatible endpoint here serves only all-MiniLM-L6-v2)."""

import asyncio
import dataclasses
import json
import tomllib

import dagger

from . import testing
from .model import lock_path, with_export_package
from .toolchain import VENV, WORKDIR

TINY_REPO = "embedder-tests/tiny-roberta-cls-dense"
TINY_REVISION = "0" * 39 + "1"
TINY_SNAPSHOT = "/work/tiny/model"


def pinned(lock: str, name: str) -> str:
    """``name==version`` as uv.lock pins it."""
    (version,) = [p["version"] for p in tomllib.loads(lock)["package"] if p["name"] == name]
    return f"{name}=={version}"


def with_tests(exporter: dagger.Container, source: dagger.Directory, uv_lock: str) -> dagger.Container:
    """The exporter's environment (torch, sentence-transformers, onnx) with pytest as uv.lock pins it, the
    export code and tests/export (which need no other conftest: run with --noconftest)."""
    return (
        exporter.with_exec(["uv", "pip", "install", "--python", f"{VENV}/bin/python", pinned(uv_lock, "pytest")])
        .with_file(f"{WORKDIR}/pyproject.toml", source.file("pyproject.toml"))
        .with_(with_export_package(source))
        .with_directory(f"{WORKDIR}/tests/export", source.directory("tests/export"))
        .with_env_variable("PYTHONPATH", WORKDIR)
    )


def tiny_model(ctr: dagger.Container) -> dagger.Directory:
    """SERVED's files, saved by sentence-transformers (seeded weights)."""
    return ctr.with_exec(["python", "tests/export/tiny_models.py", TINY_SNAPSHOT]).directory(TINY_SNAPSHOT)


async def served_check(embedder, exporter: dagger.Container) -> str:
    """SERVED from disk (--model-dir) with a lock made by `lock`, built into an image and checked by
    tests/anymodel/; and the default model's lock made again through the endpoint equals the committed one."""
    tiny = tiny_model(with_tests(exporter, embedder.source, await embedder.source.file("uv.lock").contents()))
    on_disk = dataclasses.replace(embedder, model_repo=TINY_REPO, model_revision=TINY_REVISION, model_dir=tiny)
    source = embedder.source.with_file(lock_path(TINY_REPO, TINY_REVISION), await on_disk.lock())
    served = dataclasses.replace(on_disk, source=source)
    image, model = await asyncio.gather(served.build(), served.model())
    ctr = testing.with_service(testing.runner(embedder.tools(), embedder.source, model), image, served.served)
    out = await testing.pytest(ctr, "-s", "tests/anymodel")
    committed = lock_path(embedder.model_repo, embedder.model_revision)
    made, kept = await asyncio.gather(embedder.lock(), embedder.source.file(committed).contents())
    if json.loads(await made.contents()) != json.loads(kept):
        raise AssertionError(f"`dagger call lock` made a lock that differs from {committed}")
    try:  # a revision nobody locked: refused before anything runs, with the command that makes its lock
        await dataclasses.replace(embedder, model_revision="f" * 40).model()
    except ValueError as e:
        refused = str(e)
    else:
        raise AssertionError("the model stage built a revision that has no committed lock")
    if "lock export --path models/" not in refused:
        raise AssertionError(f"the refusal does not name the command that makes the lock: {refused}")
    # pytest's summary comes last: the output of `test` (and of .ci/run) ends with it.
    return f"`lock` through the endpoint reproduces {committed}\nunlocked revision refused: {refused}\n" + out
