"""Release evidence: the image's CycloneDX SBOM (release/sbom.py, run on the image's filesystem)."""

import dagger
from .toolchain import PATH, WORKDIR, with_project_files

#: Where the image carries its SBOM, and the label that says so.
SBOM_PATH = "/usr/share/sbom/embedder.cdx.json"
SBOM_LABEL = "io.embedder.sbom"
ROOTFS = "/image"


def generator(tools: dagger.Container, source: dagger.Directory) -> dagger.Container:
    """The release group alone (cyclonedx-python-lib, python-debian; not the service's dependencies, which a build
    on a published base never installs) and release/, with uv.lock for the hashes."""
    return (
        tools.with_(with_project_files(source))
        .with_exec(["uv", "sync", "--only-group", "release", "--no-install-project"])
        .with_env_variable("PATH", PATH)
        .with_directory(f"{WORKDIR}/release", source.directory("release"))
    )


async def sbom(generator: dagger.Container, image: dagger.Container, commit: str, epoch: int, engine: str):
    """The SBOM of ``image`` (a File), validated against the CycloneDX schema as it is written."""
    model_dir, python, version = [
        await image.env_variable("EMBEDDER_MODEL_DIR"), await image.env_variable("PYTHON_VERSION"),
        await image.label("org.opencontainers.image.version"),
    ]
    if not python:
        raise ValueError("the base image sets no PYTHON_VERSION: the SBOM cannot name its Python's version")
    out = "/sbom.cdx.json"
    return (
        generator.with_mounted_directory(ROOTFS, image.rootfs())
        .with_exec([
            "python", "-m", "release.sbom", "--rootfs", ROOTFS, "--uv-lock", "uv.lock", "--model-dir", model_dir,
            "--python-version", python, "--image-version", version, "--commit", commit, "--epoch", str(epoch),
            "--engine", engine, "--out", out,
        ])
        .file(out)
    )


def with_sbom(tree: dagger.Directory, file: dagger.File) -> dagger.Directory:
    """``tree`` (to merge at /) with the SBOM at its place."""
    return tree.with_file(SBOM_PATH.lstrip("/"), file)


async def with_image_sbom(ctr: dagger.Container, image: dagger.Container) -> dagger.Container:
    """For tests/release: the SBOM ``image`` carries (SBOM), its root filesystem (IMAGE_ROOTFS) and its label."""
    return (
        ctr.with_mounted_file("/sbom.cdx.json", image.file(SBOM_PATH)).with_env_variable("SBOM", "/sbom.cdx.json")
        .with_mounted_directory(ROOTFS, image.rootfs()).with_env_variable("IMAGE_ROOTFS", ROOTFS)
        .with_env_variable("SBOM_LABEL", await image.label(SBOM_LABEL))
    )
