"""What the deployment files are checked against: the app's own settings, sizing and routes."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.sizing import ModelShape, estimate
# A Kubernetes or Compose memory quantity ("896Mi", "896m") in bytes: the worst-load check's parser, re-exported.
from tests.memory.worst_load import limit_bytes as memory_bytes  # noqa: F401


def settings_from_env(env: dict[str, str], model_dir: Path) -> Settings:
    """The service's settings as the deployment file sets them (files it mounts are left out: they exist only
    in a running pod)."""
    values = {
        name.removeprefix("EMBEDDER_").lower(): value
        for name, value in env.items()
        if name.startswith("EMBEDDER_") and not name.endswith("_FILE") and name != "EMBEDDER_MODEL_DIR"
    }
    return Settings(model_dir=model_dir, **values)


def sizing_limit_bytes(settings: Settings) -> int:
    """`python -m app.sizing`'s memory limit for these settings and this model."""
    return estimate(settings, ModelShape.read(settings)).limit_mb << 20


def shutdown_budget_s(settings: Settings) -> float:
    """How long the service may take after SIGTERM: /ready flips, then the drain."""
    return settings.shutdown_delay_s + settings.graceful_timeout_s


def app_paths(model_dir: Path) -> set[str]:
    """The paths of the app's HTTP API (its OpenAPI document; the app is built, not started)."""
    from app.main import create_app

    return set(create_app(Settings(model_dir=model_dir)).openapi()["paths"])
