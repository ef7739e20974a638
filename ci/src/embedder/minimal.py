"""The minimal runtime image's system layer: the interpreter, its standard library, the shared libraries the
service loads and a dpkg status for exactly the packages they come from; no shell, no package manager.

Picked from the base image in two steps. ``loaded`` runs the service in a stage that holds the base image, the
virtualenv, the app and the model, and records what the process maps (release/loaded.py: what it opens at run
time, which no NEEDED entry names). ``system_tree`` then reads that stage's filesystem with the release tools
(release/rootfs.py): the interpreter, the standard library, everything the mapped objects and every extension
need (ELF NEEDED, resolved as the loader does), configuration, accounts, copyright files and dpkg status.
"""

import dagger

from .runtime import APP_HOME, MODELS, UID
from .toolchain import VENV

PROBE = "/probe"
ROOTFS = "/image"
OUT = "/system"


def loaded(stage: dagger.Container, source: dagger.Directory, app: dagger.Directory) -> dagger.File:
    """release/loaded.py's record of the running service in ``stage`` (the image's content and config on the
    base image), as root (the stage has no account for the service's user yet)."""
    out = "/loaded.json"
    return (
        stage.with_directory(f"{APP_HOME}/app", app)
        .with_file(f"{PROBE}/loaded.py", source.file("release/loaded.py"))
        .with_user("0:0")
        .with_exec(["python", f"{PROBE}/loaded.py", "--out", out])
        .file(out)
    )


def system_tree(generator: dagger.Container, stage: dagger.Container, record: dagger.File,
                epoch: int) -> dagger.Directory:
    """The system layer (a tree to merge at /), by release/rootfs.py on ``stage``'s filesystem."""
    return (
        generator.with_mounted_directory(ROOTFS, stage.rootfs())
        .with_mounted_file("/loaded.json", record)
        .with_exec(["python", "-m", "release.rootfs", "--rootfs", ROOTFS, "--loaded", "/loaded.json",
                    "--venv", VENV, "--own", MODELS, "--own", APP_HOME, "--out", OUT, "--epoch", str(epoch),
                    "--uid", str(UID)])
        .directory(OUT)
    )


async def inherited_env(base: dagger.Container) -> dict[str, str]:
    """The base image's environment that the interpreter's users expect (LANG, PYTHON_VERSION…), not PATH
    (the runtime config sets it) or build-only keys."""
    skip = {"PATH", "GPG_KEY", "PYTHON_SHA256", "PYTHON_PIP_VERSION", "PYTHON_GET_PIP_URL", "PYTHON_GET_PIP_SHA256"}
    found = {}
    for var in await base.env_variables():
        name = await var.name()
        if name not in skip:
            found[name] = await var.value()
    return found
