"""Base images, cache volumes and the uv toolchain, defined once for every stage."""

import dagger
from dagger import dag

WORKDIR = "/src"
VENV = "/opt/venv"
UV_CACHE = "/root/.cache/uv"
PYPI = "https://pypi.org/simple"
PATH = f"{VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def uv_cache() -> dagger.CacheVolume:
    return dag.cache_volume("embedder-uv")


def hf_cache() -> dagger.CacheVolume:
    return dag.cache_volume("embedder-hf")


def with_uv(uv_image: str, index_url: str | None):
    """uv from its image, its cache in a volume, the base image's own Python, nothing downloaded twice."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        ctr = (
            ctr.with_file("/usr/local/bin/uv", dag.container().from_(uv_image).file("/uv"))
            .with_mounted_cache(UV_CACHE, uv_cache())
            .with_env_variable("UV_CACHE_DIR", UV_CACHE)
            .with_env_variable("UV_LINK_MODE", "copy")
            .with_env_variable("UV_SYSTEM_CERTS", "1")
            .with_env_variable("UV_PYTHON_DOWNLOADS", "never")
            .with_env_variable("UV_PYTHON_PREFERENCE", "only-system")
            .with_env_variable("UV_PROJECT_ENVIRONMENT", VENV)
            .with_env_variable("UV_COMPILE_BYTECODE", "1")
            .with_env_variable("UV_FROZEN", "1")
        )
        return ctr.with_env_variable("UV_DEFAULT_INDEX", index_url) if index_url else ctr

    return apply


def with_project_files(source: dagger.Directory):
    """Only what dependency resolution needs, so that a code change leaves the dependency layer cached."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        return (
            ctr.with_workdir(WORKDIR)
            .with_file(f"{WORKDIR}/pyproject.toml", source.file("pyproject.toml"))
            .with_file(f"{WORKDIR}/uv.lock", source.file("uv.lock"))
            .with_file(f"{WORKDIR}/.python-version", source.file(".python-version"))
        )

    return apply
