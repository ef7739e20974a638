"""The slim runtime image: a uv-built virtualenv, the app and the model directory on the base image."""

import dagger

from .toolchain import VENV, with_project_files

APP_HOME = "/srv/embedder"
MODELS = "/opt/models"
PORT = 8000
UID = 1000
# Optional extras of dependencies that the service never uses: hf-xet (tokenizers -> huggingface_hub downloads;
# the model is never downloaded at run time).
NOT_SHIPPED = ["hf-xet"]
# Files of installed packages the service never loads: test suites, ONNX Runtime's Python tooling (model
# optimizers, quantizers) and its C-API library (the Python binding is self-contained), sources, headers and
# type stubs of compiled extensions, numpy's Fortran wrapper generator and PyInstaller hooks.
PRUNE = [
    "**/tests",
    "**/*.pyi",
    "**/*.pyx",
    "**/*.pxd",
    "**/*.c",
    "**/*.h",
    "**/*.cpp",
    "**/numpy/f2py",
    "**/numpy/_pyinstaller",
    "**/onnxruntime/capi/libonnxruntime.so*",
    "**/onnxruntime/transformers",
    "**/onnxruntime/quantization",
    "**/onnxruntime/tools",
    "**/onnxruntime/datasets",
]
ONNX = {"FP32": "onnx/model.onnx", "INT8": "onnx/model_int8.onnx"}


def virtualenv(tools: dagger.Container, source: dagger.Directory) -> dagger.Directory:
    """Runtime dependencies only (no dev groups), from the lockfile, bytecode compiled; no project code yet."""
    return (
        tools.with_(with_project_files(source))
        .with_exec(["uv", "sync", "--no-dev", "--no-default-groups", "--no-install-project",
                    *(flag for name in NOT_SHIPPED for flag in ("--no-install-package", name))])
        .directory(VENV)
    )


def app_code(source: dagger.Directory) -> dagger.Directory:
    """The service package, without the model stage's export code. Not compiled to bytecode: that would cost
    an exec on every code change, for some 15 small modules that compile in milliseconds at start."""
    return source.directory("app").without_directory("export")


def model_path(repo: str, revision: str) -> str:
    return f"{MODELS}/{repo.replace('/', '--')}/{revision}"


def only_variant(model: dagger.Directory, variant: str) -> dagger.Directory:
    """Ship the served ONNX variant only: the other one is dead weight in the image."""
    for name, path in ONNX.items():
        if name != variant:
            model = model.without_file(path)
    return model


def with_user(ctr: dagger.Container) -> dagger.Container:
    return ctr.with_exec(
        ["useradd", "--uid", str(UID), "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "embedder"]
    )


def with_healthcheck(ctr: dagger.Container) -> dagger.Container:
    # start_period: loading and calibrating (one full call per worker) take a few seconds alone, and
    # tens of seconds on a machine busy with other containers; a service binding waits for this check.
    return ctr.with_docker_healthcheck(
        ["python", "-m", "app.healthcheck"], interval="10s", timeout="3s", start_period="60s",
        start_interval="1s", retries=3,
    )
