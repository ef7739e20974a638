"""Service settings, read from the environment (prefix ``EMBEDDER_``).

Invalid values fail at start: ``python -m app`` prints the pydantic errors and exits 2
before binding the port.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.cpus import cpu_budget

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

#: The graph each engine reads, relative to the model directory.
GRAPH_FILES: dict[str, str] = {"openvino": "openvino/openvino_model.xml", "onnxruntime": "onnx/model.onnx"}
#: Files the service reads besides the graph.
REQUIRED_FILES = ("model.lock.json", "tokenizer.json", "embedding.json", "startcheck.json")  # app.startcheck.NAME
#: What the current model stage writes (an older one lacks some): the files above and each engine's graph.
EXPORTED_FILES = (*REQUIRED_FILES, *GRAPH_FILES.values())


#: The default admission bound, in full requests (EMBEDDER_MAX_INPUTS texts of the model's max_seq_length).
QUEUED_REQUESTS = 1.25


class Settings(BaseSettings):
    """All knobs of the service. Every field maps to ``EMBEDDER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="EMBEDDER_", extra="ignore", frozen=True)

    host: str = Field("0.0.0.0", min_length=1, description="Interface uvicorn binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port uvicorn listens on.")
    model_dir: Path = Field(Path("/model"), description="Exported model directory (read-only).")
    max_batch: int = Field(32, ge=1, le=1024, description="Most texts in one engine call.")
    max_batch_tokens: int = Field(
        1024,
        ge=1,
        le=1_048_576,
        description="Most padded tokens (texts x longest text) in one engine call; bounds its memory.",
    )
    max_queued_texts: int = Field(
        1024, ge=1, description="Most texts admitted (queued or running) at once; past it, 503 + Retry-After."
    )
    max_queued_bytes: int = Field(
        32 << 20,
        ge=1,
        description="Most bytes of request bodies being read and handled at once; past it, 503 + Retry-After.",
    )
    max_queued_tokens: int | None = Field(
        None,
        ge=1,
        description="Most tokens admitted (queued or running) at once; past it, 503 + Retry-After. Default: "
        f"{QUEUED_REQUESTS} full requests of the model (EMBEDDER_MAX_INPUTS x its max_seq_length; 81,920 for "
        "256 texts of 256 tokens).",
    )
    slack_ms_per_token: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="Scheduling slack per token: larger favours short texts more (docs/scheduling.md).",
    )
    call_overhead_tokens: float | None = Field(
        None,
        ge=0,
        description="Fixed cost of one engine call in padded tokens, for grouping texts into calls; "
        "unset = measured right after /ready, 20 until then (docs/scheduling.md).",
    )
    max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="Most time a batch waits for more requests under load."
    )
    max_inputs: int = Field(256, ge=1, le=100_000, description="Most texts in one request.")
    max_text_chars: int = Field(8192, ge=1, description="Most characters in one text.")
    workers: int = Field(
        0,
        ge=0,
        le=256,
        description="Engine calls run at once on the one model; 0 = usable CPUs + 1 (docs/scheduling.md, Threads).",
    )
    engine: Literal["openvino", "onnxruntime"] = Field(
        "openvino", description="Inference engine; an image has one (docs/settings.md, Engines)."
    )
    precision: Literal["auto", "f32", "bf16"] = Field(
        "auto",
        description="OpenVINO's precision: auto = bf16 where the CPU runs it natively, else f32 (ONNX Runtime: f32).",
    )
    intra_op_threads: int = Field(
        1, ge=0, le=256, description="Threads per call (OpenVINO: per stream), 0 = all usable cores (docs/scheduling.md, Threads)."
    )
    inter_op_threads: int = Field(1, ge=0, le=256, description="ORT inter-op threads, 0 = ORT default.")
    ort_spinning: bool = Field(
        False, description="Let ORT's pool threads spin-wait for work (session.intra_op.allow_spinning)."
    )
    ort_arena: bool = Field(
        True, description="ORT's CPU memory arena (kept at its peak size; docs/scheduling.md, Memory)."
    )
    api_keys: SecretStr = Field(
        SecretStr(""), description="Accepted API keys, comma-separated; set = every route but probes needs one."
    )
    api_keys_file: Path | None = Field(
        None, description="File of accepted API keys, one per line (a mounted Secret; re-read when it changes)."
    )
    metrics_require_key: bool = Field(False, description="With API keys set, /metrics needs one too.")
    cache_url: SecretStr = Field(
        SecretStr(""), description="redis:// or rediss:// URL of a shared embedding cache; unset = no cache."
    )
    cache_password: SecretStr = Field(SecretStr(""), description="Redis password, if not in the URL.")
    cache_password_file: Path | None = Field(
        None, description="File holding the Redis password (a mounted Secret), instead of EMBEDDER_CACHE_PASSWORD."
    )
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=0, description="Seconds a cached vector lives; 0 = until evicted.")
    cache_timeout_ms: float = Field(50.0, gt=0, le=10_000, description="Most time one cache call may take.")
    cache_breaker_s: float = Field(
        10.0, ge=0, le=3600, description="After a cache failure, how long requests skip the cache."
    )
    log_level: LogLevel = Field("info", description="Log level of the JSON logs on stdout.")
    graceful_timeout_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description="On SIGTERM, how long admitted requests may take to finish (docs/scheduling.md, Shutdown).",
    )
    shutdown_delay_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="On SIGTERM, how long /ready says 503 while requests are still served, before the drain.",
    )
    verify_model: bool = Field(
        True, description="Check sha256 of the files used against model.lock.json at load."
    )

    @field_validator("log_level", "engine", "precision", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cache_url")
    @classmethod
    def _cache_scheme(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return value

    @model_validator(mode="after")
    def _check_engine_settings(self) -> Settings:
        if os.environ.get("EMBEDDER_VARIANT", "fp32").strip().lower() != "fp32":
            raise ValueError("EMBEDDER_VARIANT: the int8 variant was removed (it was slower than OpenVINO's bf16 at "
                             "a lower accuracy; docs/settings.md, Engines); unset it")
        if self.engine == "onnxruntime" and self.precision == "bf16":
            raise ValueError("EMBEDDER_PRECISION=bf16 needs EMBEDDER_ENGINE=openvino: ONNX Runtime runs f32")
        ort_only = sorted({"ort_spinning", "ort_arena", "inter_op_threads"} & self.model_fields_set)
        if self.engine == "openvino" and ort_only:
            names = ", ".join(f"EMBEDDER_{n.upper()}" for n in ort_only)
            raise ValueError(f"{names}: ONNX Runtime settings, which OpenVINO has no use for; unset them")
        return self

    @model_validator(mode="after")
    def _check_queue_caps(self) -> Settings:
        if self.max_queued_texts < self.max_inputs:
            raise ValueError(
                f"max_queued_texts ({self.max_queued_texts}) is below max_inputs ({self.max_inputs}): "
                "a full request could never be admitted; raise EMBEDDER_MAX_QUEUED_TEXTS"
            )
        return self

    @model_validator(mode="after")
    def _check_cache_password_file(self) -> Settings:
        path = self.cache_password_file
        if path is None:
            return self
        if self.cache_password.get_secret_value():
            raise ValueError("set EMBEDDER_CACHE_PASSWORD or EMBEDDER_CACHE_PASSWORD_FILE, not both")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(
                f"cache_password_file {str(path)!r} cannot be read ({e.strerror}); mount the Secret there"
            ) from None
        if not text.strip():
            raise ValueError(f"cache_password_file {str(path)!r} is empty; put the Redis password in it")
        return self

    @property
    def redis_password(self) -> str:
        """The Redis password: EMBEDDER_CACHE_PASSWORD, or the first line of EMBEDDER_CACHE_PASSWORD_FILE."""
        if self.cache_password_file is not None:
            return self.cache_password_file.read_text(encoding="utf-8").strip()
        return self.cache_password.get_secret_value()

    @model_validator(mode="after")
    def _check_model_dir(self) -> Settings:
        root = self.model_dir
        hint = "build it with `dagger call model` (or `python -m app.export`) and point EMBEDDER_MODEL_DIR at it"
        if not root.is_dir():
            raise ValueError(f"model_dir {str(root)!r} is not a directory; {hint}")
        needed = [*REQUIRED_FILES, *self.graph_files]
        missing = [name for name in needed if not (root / name).is_file()]
        if missing:
            raise ValueError(
                f"model_dir {str(root)!r} lacks {', '.join(missing)} "
                f"(EMBEDDER_ENGINE={self.engine}); {hint}"
            )
        return self

    @cached_property
    def call_workers(self) -> int:
        """Engine calls run at once: EMBEDDER_WORKERS, or one per usable CPU (affinity and cgroup
        quota, app.cpus) plus one (a call's Python part and the event loop leave gaps that the
        extra call fills; docs/scheduling.md, Threads). Read once: the cgroup files are not re-read per use."""
        return self.workers or cpu_budget().cpus + 1

    @property
    def graph_path(self) -> Path:
        """The model file the engine reads: ONNX for ONNX Runtime, OpenVINO IR (.xml, weights in .bin) for OpenVINO."""
        return self.model_dir / GRAPH_FILES[self.engine]

    @property
    def graph_files(self) -> list[str]:
        """Every file of the graph, relative to the model directory: the IR's .xml and its weights (.bin), or
        the ONNX file and its external data, if any (models over 2 GB)."""
        graph = self.graph_path
        if graph.suffix == ".xml":
            extra = [graph.with_suffix(".bin")]
        else:
            extra = [p for p in (graph.with_name(graph.name + s) for s in ("_data", ".data")) if p.is_file()]
        return [p.relative_to(self.model_dir).as_posix() for p in (graph, *extra)]


def for_model(settings: Settings, max_seq_length: int) -> Settings:
    """The settings with the defaults that follow the model filled in (EMBEDDER_MAX_QUEUED_TOKENS)."""
    if settings.max_queued_tokens is not None:
        return settings
    tokens = int(QUEUED_REQUESTS * settings.max_inputs * max_seq_length)
    return settings.model_copy(update={"max_queued_tokens": tokens})


def describe_settings_error(exc: Exception) -> str:
    """One readable line per invalid setting, naming its environment variable."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        name = f"EMBEDDER_{loc.upper()}" if loc else "settings"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        secret = loc in ("api_keys", "cache_url", "cache_password")  # may hold a password: never echoed
        shown = "" if not loc or secret or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{name}: {msg}{shown}")
    return "invalid settings: " + "; ".join(lines)
