"""deploy/compose.yaml against the app: hardening, limits from the sizing formula, a stop grace period that
outlasts the shutdown. (.ci/run also brings it up for real on Docker.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy_support import memory_bytes, settings_from_env, shutdown_budget_s, sizing_limit_bytes

COMPOSE = Path(__file__).resolve().parent.parent / "deploy" / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def seconds(duration: str) -> float:
    value = duration.strip()
    return float(value[:-1]) * {"s": 1, "m": 60}[value[-1]]


@pytest.mark.parametrize("name", ["embedder", "redis"])
def test_every_service_is_hardened(services, name):
    svc = services[name]
    assert svc["read_only"] is True
    assert svc["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in svc["security_opt"]
    assert memory_bytes(svc["mem_limit"]) == memory_bytes(svc["memswap_limit"]), "no swap beyond the limit"
    assert float(svc["cpus"]) > 0
    assert any(t.split(":")[0] == "/tmp" for t in svc["tmpfs"])


def test_memory_limit_is_the_sizing_formula(services, model_dir):
    svc = services["embedder"]
    settings = settings_from_env(svc["environment"], model_dir)
    # The workers the memory is sized for are pinned, and match the CPUs given (CPUs + 1; docs/scheduling.md, Threads).
    assert settings.call_workers == int(float(svc["cpus"])) + 1
    assert memory_bytes(svc["mem_limit"]) >= sizing_limit_bytes(settings)


def test_stop_grace_outlasts_the_shutdown(services, model_dir):
    svc = services["embedder"]
    settings = settings_from_env(svc["environment"], model_dir)
    assert seconds(svc["stop_grace_period"]) > shutdown_budget_s(settings)


def test_secrets_come_from_files_not_the_environment(services):
    env = services["embedder"]["environment"]
    assert {"api_keys", "redis_password"} <= set(services["embedder"]["secrets"])
    assert env["EMBEDDER_API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert env["EMBEDDER_CACHE_PASSWORD_FILE"] == "/run/secrets/redis_password"
    assert not {"EMBEDDER_API_KEYS", "EMBEDDER_CACHE_PASSWORD"} & set(env)
    assert "requirepass" not in " ".join(services["redis"]["command"][:-1])  # only in the stdin config
    assert env["EMBEDDER_CACHE_URL"].startswith("redis://redis:")
    assert "healthcheck" not in services["embedder"], "the image's own healthcheck is the one to use"
