"""What the deployment files are checked against: the app's own settings, sizing and routes."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings
from app.sizing import ModelShape, estimate

#: Kubernetes' suffixes ("896Mi", "1G") and docker's (lowercase, binary: "896m" is 896 MiB).
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30,
         "K": 10**3, "M": 10**6, "G": 10**9}


def memory_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity or a Compose one, in bytes."""
    match = re.fullmatch(r"(\d+)([kKmMgG]i?|)", str(quantity).strip())
    assert match, f"unreadable memory quantity {quantity!r}"
    number, unit = match.groups()
    return int(number) * UNITS[unit]


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
