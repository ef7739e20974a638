"""The published base for code-only builds: everything but app/ (base OS, user, model, virtualenv, runtime
config), keyed by the content of its inputs, so that a cold CI runner pulls it and adds only the app layer."""

import hashlib
import json
import tomllib

import dagger
from dagger import dag

from .model import lock_path
from .toolchain import on

#: The base's content key, and the inputs it was computed from (JSON), as labels of the base (and of every image
#: built on it).
KEY_LABEL = "io.embedder.base.key"
INPUTS_LABEL = "io.embedder.base.inputs"
#: The recipe's version: bump it when what the base holds changes without any input changing (runtime.py:
#: PRUNE, NOT_SHIPPED, layer layout, the runtime config).
RECIPE = "3"
#: Tags carry this many hex digits of the key (the full key is in the label and printed).
TAG_DIGITS = 16
MODEL_EXPORT = "app/export"
#: The code that picks the system layer (release/loaded.py, rootfs.py, elf.py; minimal.py runs them).
SYSTEM_PICKER = ["loaded.py", "rootfs.py", "elf.py"]
#: The port of base-check's registry (publish-check's is another: credentials are per registry host).
CHECK_PORT = 5002


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def dependency_part(pyproject: str) -> str:
    """What of pyproject.toml decides the virtualenv (the rest, such as the version or the URLs, does not)."""
    doc = tomllib.loads(pyproject)
    project = doc.get("project", {})
    part = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "dependency-groups": doc.get("dependency-groups", {}),  # the engine's group is in the image
        "tool.uv": doc.get("tool", {}).get("uv", {}),
    }
    return json.dumps(part, sort_keys=True)


async def tree_hash(directory: dagger.Directory) -> str:
    """sha256 over the paths and contents of a directory's files (times and owners do not count)."""
    paths = sorted(p for p in await directory.glob("**/*") if not p.endswith("/"))
    digest = hashlib.sha256()
    for path in paths:
        entry = directory.file(path)
        digest.update(f"{path}\0{sha256(await entry.contents())}\n".encode())
    return digest.hexdigest()


async def resolved(image: str) -> str:
    """The image reference resolved to its digest (what `from` pulled)."""
    return await dag.container().from_(image).image_ref()


async def inputs(source: dagger.Directory, base_image: str, uv_image: str, model_repo: str, model_revision: str,
                 engine: str, platform: str) -> dict[str, str]:
    """Everything the base's content depends on, each named as the refusal names it."""
    return {
        "uv.lock": sha256(await source.file("uv.lock").contents()),
        "pyproject.toml dependencies": sha256(dependency_part(await source.file("pyproject.toml").contents())),
        "model": f"{model_repo}@{model_revision}",
        "model lock": sha256(await source.file(lock_path(model_repo, model_revision)).contents()),
        "model export code (app/export/)": await tree_hash(source.directory(MODEL_EXPORT)),
        "system layer picker (release/)": await tree_hash(
            dag.directory().with_directory(".", source.directory("release"), include=SYSTEM_PICKER)),
        "base image": await resolved(base_image),
        "uv image": await resolved(uv_image),
        "engine": engine,
        "platform": platform or str(await dag.default_platform()),
        "recipe": RECIPE,
    }


def key(found: dict[str, str]) -> str:
    return sha256(json.dumps(found, sort_keys=True))


def differences(published: dict[str, str], here: dict[str, str]) -> list[str]:
    return [
        f"{name} (base: {published.get(name, 'absent')}, this checkout: {here.get(name, 'absent')})"
        for name in sorted(published.keys() | here.keys())
        if published.get(name) != here.get(name)
    ]


def labelled(base: dagger.Container, found: dict[str, str]) -> dagger.Container:
    return base.with_label(KEY_LABEL, key(found)).with_label(INPUTS_LABEL, json.dumps(found, sort_keys=True))


def with_key_tag(ref: str, found: dict[str, str]) -> str:
    """REF@sha256:… and REF:TAG as given; a bare repository gets the tag of this checkout's key, the base that
    `publish-base` pushed for the same inputs."""
    return ref if "@" in ref or ":" in ref.rsplit("/", 1)[-1] else f"{ref}:{key(found)[:TAG_DIGITS]}"


def pull(ref: str, platform: str = "", registry: dagger.Service | None = None) -> dagger.Container:
    """The published base for ``platform`` (credentials, if any, come from with_registry_auth on the same host)."""
    return on(platform).from_(ref, registry_service=registry)


async def checked(base: dagger.Container, ref: str, here: dict[str, str]) -> dagger.Container:
    """``base`` if its content key is this checkout's; else a ValueError naming every input that differs."""
    try:
        published_key, published = await base.label(KEY_LABEL), await base.label(INPUTS_LABEL)
    except dagger.QueryError as e:
        raise ValueError(
            f"cannot pull the base {ref}: {str(e).splitlines()[0]}. If no base of this checkout's inputs is "
            "published yet, run `dagger call publish-base --address …` first (and log in if the registry needs it)."
        ) from e
    if not published_key or not published:
        raise ValueError(f"{ref} carries no {KEY_LABEL} label: it is not a base from `dagger call publish-base`")
    if published_key == key(here):
        return base
    found = differences(json.loads(published), here)
    raise ValueError(
        f"the base {ref} does not match this checkout: {'; '.join(found) or KEY_LABEL}. Publish a base for this "
        "checkout (`dagger call publish-base --address …`) and pass its reference, or build without --base-ref."
    )


async def refusal(base: dagger.Container, ref: str, here: dict[str, str]) -> str:
    """The message ``checked`` refuses ``base`` with for a checkout of inputs ``here`` (AssertionError if it
    accepts it)."""
    try:
        await checked(base, ref, here)
    except ValueError as e:
        return str(e)
    raise AssertionError(f"{ref} was accepted for other inputs: {here}")


def tags(found: dict[str, str], date: str) -> list[str]:
    """The key, and the key with the date (a dated tag keeps each rebuild of one key addressable)."""
    short = key(found)[:TAG_DIGITS]
    return [short, f"{short}-{date}"]
