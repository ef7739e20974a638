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


def export_requirements(tools: dagger.Container, source: dagger.Directory, cpu_only: list[str]) -> dagger.File:
    """The export group's pinned requirements, minus CUDA-only packages when torch comes from a CPU index."""
    args = ["uv", "export", "--no-default-groups", "--group", "export", "--no-hashes", "--no-emit-project"]
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


def with_export_code(source: dagger.Directory):
    def apply(ctr: dagger.Container) -> dagger.Container:
        # File by file, not `include=`: the cache then keys on these files' contents only, so a change
        # elsewhere in app/ does not export the model again.
        return (
            ctr.with_file(f"{WORKDIR}/app/__init__.py", source.file("app/__init__.py"))
            .with_file(f"{WORKDIR}/app/lock.py", source.file("app/lock.py"))
            .with_directory(f"{WORKDIR}/app/export", source.directory("app/export"))
            .with_workdir(WORKDIR)
        )

    return apply


def download(ctr: dagger.Container, endpoint: str, repo: str, revision: str, token: dagger.Secret | None):
    """Fetch the locked files into SNAPSHOT; huggingface_hub's cache lives in a volume, so a rerun downloads nothing."""
    ctr = ctr.with_mounted_cache(HF_CACHE, hf_cache()).with_env_variable("HF_HOME", HF_CACHE)
    ctr = ctr.with_env_variable("HF_HUB_DISABLE_TELEMETRY", "1")
    ctr = ctr.with_env_variable("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if token is not None:
        ctr = ctr.with_secret_variable("HF_TOKEN", token)
    return ctr.with_exec([
        "python", "-m", "app.export", "download",
        "--endpoint", endpoint, "--repo", repo, "--revision", revision, "--out", SNAPSHOT,
    ])


def build_model_dir(ctr: dagger.Container) -> dagger.Directory:
    build = ["python", "-m", "app.export", "build", "--snapshot", SNAPSHOT, "--out", MODEL]
    return ctr.with_exec(build).directory(MODEL)
