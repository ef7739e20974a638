"""The built image, sent the worst load the defaults admit, stays under the memory limit the Kubernetes
manifests give it (deploy/k8s/base/deployment.yaml), by its container's cgroup count. Dagger cannot set a
memory limit, so this asserts the measured peak; .ci/run runs the same load under `docker run --memory`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.memory.worst_load import CLIENTS, limit_bytes, run

URL = os.environ.get("EMBEDDER_BASE_URL")
DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "deployment.yaml"
pytestmark = pytest.mark.skipif(not URL, reason="EMBEDDER_BASE_URL: run by `dagger call memory-check`")


def manifest_limit() -> str:
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]
    (ctr,) = [c for c in pod["containers"] if c["name"] == "embedder"]
    return ctr["resources"]["limits"]["memory"]


def test_worst_admitted_load_stays_under_the_manifest_limit():
    print(run(URL, limit_bytes(manifest_limit()), CLIENTS, 900, expect_cgroup_limit=False))
