"""The slim runtime image: a uv-built virtualenv, the app and the model directory on the base image."""

import json
from datetime import UTC, datetime

import dagger
from dagger import dag

from .toolchain import PATH, VENV, with_project_files

APP_HOME = "/srv/embedder"
MODELS = "/opt/models"
PORT = 8000
UID = 1000
# Dependencies that the service never loads: huggingface_hub and what only it needs (tokenizers depends on it for
# Tokenizer.from_pretrained downloads; the service reads tokenizer.json from the model directory and never imports
# it, nor do tokenizers' other paths it uses) and openvino-telemetry (used by OpenVINO's converter tools, which are
# not shipped; the runtime never imports it). tests/image checks that the image imports the app and embeds.
NOT_SHIPPED = ["huggingface-hub", "hf-xet", "pyyaml", "fsspec", "filelock", "tqdm", "openvino-telemetry"]
# Files of installed packages the service never loads: test suites, sources, headers and type stubs of compiled
# extensions, numpy's Fortran wrapper generator and PyInstaller hooks; then each engine's own (ENGINE_PRUNE).
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
]
_OV = "**/openvino"
#: Per engine: ONNX Runtime's Python tooling (model optimizers, quantizers) and its C-API library (the Python
#: binding is self-contained); OpenVINO's other devices (GPU, NPU, and the AUTO/HETERO/BATCH meta-devices), its
#: frontends but IR's (the model stage converts; the service reads IR), its C API, converter tools, headers,
#: CMake files and the GPU kernel cache (cache.json). OpenVINO keeps its core, the CPU plugin, the IR frontend
#: and TBB.
ENGINE_PRUNE = {
    "onnxruntime": [
        "**/onnxruntime/capi/libonnxruntime.so*",
        "**/onnxruntime/transformers",
        "**/onnxruntime/quantization",
        "**/onnxruntime/tools",
        "**/onnxruntime/datasets",
    ],
    "openvino": [
        f"{_OV}/libs/libopenvino_intel_gpu_plugin.so",
        f"{_OV}/libs/libopenvino_intel_npu_plugin.so",
        f"{_OV}/libs/libopenvino_auto_plugin.so",
        f"{_OV}/libs/libopenvino_auto_batch_plugin.so",
        f"{_OV}/libs/libopenvino_hetero_plugin.so",
        *(f"{_OV}/libs/libopenvino_{name}_frontend.so*"
          for name in ("onnx", "paddle", "pytorch", "tensorflow", "tensorflow_lite", "jax", "gguf")),
        f"{_OV}/libs/libopenvino_c.so*",
        f"{_OV}/libs/libtbbmalloc_proxy.so*",
        f"{_OV}/libs/cache.json",
        f"{_OV}/libs/tbb.pc",
        f"{_OV}/include",
        f"{_OV}/cmake",
        f"{_OV}/tools",
        *(f"{_OV}/frontend/{name}" for name in ("onnx", "paddle", "pytorch", "tensorflow", "jax")),
        f"{_OV}/torch",
    ],
}
#: The graph files each engine reads (app.config.GRAPH_FILES); the image ships only its own engine's.
GRAPHS = {
    "openvino": ["openvino/openvino_model.xml", "openvino/openvino_model.bin"],
    "onnxruntime": ["onnx/model.onnx"],
}


def prune(engine: str) -> list[str]:
    return [*PRUNE, *ENGINE_PRUNE[engine]]


#: SOURCE_DATE_EPOCH for the virtualenv's bytecode: its presence, not its value, makes Python write checked-hash
#: .pyc (no source time in them), and the layer's file times are set afterwards (layer()). A constant keeps the
#: step cached across commits (with the commit's time it ran again for each; minutes under emulation).
BYTECODE_EPOCH = "1"


def virtualenv(tools: dagger.Container, source: dagger.Directory, engine: str) -> dagger.Directory:
    """Runtime dependencies and the one engine's dependency group, from the lockfile; no project code yet.
    Bytecode compiled with SOURCE_DATE_EPOCH set, so that Python writes checked-hash .pyc (no source time)."""
    return (
        tools.with_(with_project_files(source))
        .with_env_variable("SOURCE_DATE_EPOCH", BYTECODE_EPOCH)
        .with_exec(["uv", "sync", "--no-dev", "--no-default-groups", "--group", engine, "--no-install-project",
                    *(flag for name in NOT_SHIPPED for flag in ("--no-install-package", name))])
        .directory(VENV)
    )


def app_code(tools: dagger.Container, source: dagger.Directory) -> dagger.Directory:
    """The service package, without the model stage's export code, with checked-hash bytecode compiled for the
    path it runs from: Python validates it by the source's hash, not its time, so clamped file times never make
    it stale, and the service compiles nothing at start (on a read-only root filesystem it could not keep it)."""
    build = "/build/app"
    return (
        tools.with_directory(build, source.directory("app").without_directory("export"))
        .with_exec(["python", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash",
                    "-d", f"{APP_HOME}/app", build])
        .directory(build)
    )


def app_tree(app: dagger.Directory) -> dagger.Directory:
    """The compiled app at its place in a tree to merge at /."""
    return dag.directory().with_directory(f"{APP_HOME}/app".lstrip("/"), app)


def model_path(repo: str, revision: str) -> str:
    return f"{MODELS}/{repo.replace('/', '--')}/{revision}"


#: Model-directory files the service never reads: the fp32 reference embeddings of the export's own check (for
#: the test suites; computed by torch, their last bits may differ between CPUs, so kept out of the image).
NOT_SHIPPED_MODEL_FILES = ["reference.json"]


#: The image's size budget without the model directory, MB uncompressed (the system layer, the virtualenv, the
#: app), per engine. On the minimal image (minimal.py), all-MiniLM-L6-v2 measured 320 MB with OpenVINO (system
#: 51 MB: standard library 26, shared libraries 19, the interpreter 7; virtualenv 222; model files 46) and 312 MB
#: with ONNX Runtime (virtualenv 169, model files 91). Each budget leaves ~15 MB over its measure.
RUNTIME_BUDGET_MB = {"onnxruntime": 235, "openvino": 290}


def size_budget_mb(lock_json: str, engine: str) -> int:
    """The engine's RUNTIME_BUDGET_MB plus the model-directory files the image ships for it, by the sizes
    model.lock.json records."""
    dropped = {path for other, paths in GRAPHS.items() if other != engine for path in paths}
    dropped |= set(NOT_SHIPPED_MODEL_FILES)
    shipped = sum(e["size"] for path, e in json.loads(lock_json)["files"].items() if path not in dropped)
    return RUNTIME_BUDGET_MB[engine] + round(shipped / 1e6)


def only_served(model: dagger.Directory, engine: str) -> dagger.Directory:
    """Ship the graph the engine reads only (the other engine's format is dead weight in the image), and
    nothing the service does not read."""
    for other, paths in GRAPHS.items():
        if other != engine:
            model = model.without_directory(paths[0].split("/")[0])
    for path in NOT_SHIPPED_MODEL_FILES:
        model = model.without_file(path)
    return model


def layer(base: dagger.Container, path: str, content: dagger.Directory, epoch: int,
          exclude: list[str] | None = None) -> dagger.Directory:
    """``content`` placed at ``path`` in a tree to merge at /, every entry's time (parent directories and
    symlinks included) set to ``epoch``. touch, not Directory.with_timestamps: that follows symlinks and fails
    on the virtualenv's links to the base image's Python, which are dangling outside it."""
    root = "/layer"
    return (
        base.with_directory(f"{root}{path}", content, exclude=exclude or [])
        .with_exec(["find", root, "-exec", "touch", "--no-dereference", f"--date=@{epoch}", "{}", "+"])
        .directory(root)
    )


def with_healthcheck(ctr: dagger.Container) -> dagger.Container:
    # start_period: loading and checking the model take a few seconds alone, and
    # tens of seconds on a machine busy with other containers; a service binding waits for this check.
    return ctr.with_docker_healthcheck(
        ["python", "-m", "app.healthcheck"], interval="10s", timeout="3s", start_period="60s",
        start_interval="1s", retries=3,
    )


def with_runtime_config(ctr: dagger.Container) -> dagger.Container:
    """How the image runs: environment, working directory, port, user, entrypoint and healthcheck."""
    return (
        ctr.with_env_variable("PATH", PATH)
        .with_env_variable("PYTHONPATH", APP_HOME)
        .with_env_variable("PYTHONDONTWRITEBYTECODE", "1")
        .with_env_variable("PYTHONUNBUFFERED", "1")
        .with_env_variable("EMBEDDER_PORT", str(PORT))
        .with_workdir(APP_HOME)
        .with_exposed_port(PORT)
        .with_user(f"{UID}:{UID}")
        .with_entrypoint(["python", "-m", "app"])
        .with_(with_healthcheck)
    )


def oci_labels(project: dict, model_repo: str, revision: str, epoch: int) -> dict[str, str]:
    """The image's OCI labels for pyproject's [project], the commit ``revision`` and the build time ``epoch``."""
    return {
        "org.opencontainers.image.title": "embedder",
        "org.opencontainers.image.description": f"{model_repo} sentence embeddings over HTTP",
        "org.opencontainers.image.source": project.get("urls", {}).get("Source", ""),
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.version": project["version"],
        "org.opencontainers.image.created": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
