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


def on(platform: str) -> dagger.Container:
    """An empty container of ``platform`` (empty: the engine's own)."""
    return dag.container(platform=dagger.Platform(platform)) if platform else dag.container()


def with_uv(uv_image: str, index_url: str | None, platform: str = ""):
    """uv from its image (for the container's ``platform``), its cache in a volume, the base image's own Python,
    nothing downloaded twice."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        ctr = (
            ctr.with_file("/usr/local/bin/uv", on(platform).from_(uv_image).file("/uv"))
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


#: The base image's apt hook that deletes downloaded packages (it would empty the archives cache volume).
DOCKER_CLEAN = "/etc/apt/apt.conf.d/docker-clean"


def with_apt(*packages: str):
    """Debian packages from the base image's release, without recommends. Package lists and downloads live in
    named cache volumes (one apt at a time); the exec itself is cached until the base image changes."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        locked = dagger.CacheSharingMode.LOCKED
        return (
            ctr.without_file(DOCKER_CLEAN)
            .with_new_file("/etc/apt/apt.conf.d/keep-cache", 'Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
            .with_mounted_cache("/var/lib/apt/lists", dag.cache_volume("embedder-apt-lists"), sharing=locked)
            .with_mounted_cache("/var/cache/apt/archives", dag.cache_volume("embedder-apt-archives"), sharing=locked)
            .with_env_variable("DEBIAN_FRONTEND", "noninteractive")
            .with_exec(["apt-get", "update", "-qq"])
            .with_exec(["apt-get", "install", "--yes", "-qq", "--no-install-recommends", *packages])
        )

    return apply
