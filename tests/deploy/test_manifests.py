"""The rendered Kubernetes manifests (`dagger call manifests`): valid against Kubernetes' schemas, pinned to the
image digest, restricted Pod Security, and in step with the image and the app (port, user, probe paths,
memory sizing, shutdown timings). No cluster runs here: this is what the schemas and the app can prove.

Inputs (set by the pipeline's manifest check): MANIFESTS_DIR (<overlay>.yaml files), MANIFESTS_IMAGE (the
REF@DIGEST they were rendered with), IMAGE_PORTS and IMAGE_USER (from the built image's config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from deploy_support import app_paths, memory_bytes, settings_from_env, shutdown_budget_s, sizing_limit_bytes

DIR = Path(os.environ.get("MANIFESTS_DIR", "/nonexistent"))
pytestmark = pytest.mark.skipif(not DIR.is_dir(), reason="MANIFESTS_DIR: run by `dagger call manifest-check`")
#: Oldest and newest Kubernetes releases the manifests must be valid for.
KUBERNETES = ["1.30.0", kubernetes_validate.latest_version()]
RENDERED = sorted(DIR.glob("*.yaml"))
SERVER = {"app.kubernetes.io/name": "embedder", "app.kubernetes.io/component": "server"}


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]


def the(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = find(docs, kind, name)
    return doc


def container(deployment: dict, name: str) -> dict:
    (ctr,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return ctr


def matches(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


@pytest.fixture(scope="module", params=[p.stem for p in RENDERED])
def docs(request) -> list[dict]:
    return load(DIR / f"{request.param}.yaml")


@pytest.fixture(scope="module")
def server(docs) -> dict:
    return the(docs, "Deployment", "embedder")


@pytest.fixture(scope="module")
def config(docs, server) -> dict[str, str]:
    """The EMBEDDER_* settings of the server pods (the generated ConfigMap they read)."""
    (ref,) = container(server, "embedder")["envFrom"]
    return the(docs, "ConfigMap", ref["configMapRef"]["name"])["data"]


@pytest.fixture(scope="module")
def settings(config, model_dir):
    return settings_from_env(config, model_dir)


def test_every_overlay_was_rendered():
    assert {p.stem for p in RENDERED} == {"base", "with-redis"}


@pytest.mark.parametrize("version", KUBERNETES)
def test_every_manifest_is_valid_for_kubernetes(docs, version):
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises, naming the field


def test_pod_security_is_restricted(docs):
    for deployment in find(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        ctx = pod["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        assert pod["automountServiceAccountToken"] is False
        for ctr in pod["containers"]:
            c = ctr["securityContext"]
            assert c["allowPrivilegeEscalation"] is False, ctr["name"]
            assert c["readOnlyRootFilesystem"] is True, ctr["name"]
            assert c["capabilities"] == {"drop": ["ALL"]}, ctr["name"]
            assert c["seccompProfile"]["type"] == "RuntimeDefault", ctr["name"]
            assert ctr["resources"]["limits"]["memory"] == ctr["resources"]["requests"]["memory"], ctr["name"]


def test_image_is_pinned_to_the_digest(server):
    assert container(server, "embedder")["image"] == os.environ["MANIFESTS_IMAGE"]


def test_no_architecture_is_pinned(docs):
    """The image is published for linux/amd64 and linux/arm64: a pod may land on either kind of node (a mixed
    fleet shares one Redis cache safely, its keys carry the engine and precision)."""
    text = json.dumps(docs)
    for pin in ("kubernetes.io/arch", "beta.kubernetes.io/arch", '"amd64"', '"arm64"'):
        assert pin not in text, f"the manifests pin an architecture ({pin})"


def test_user_is_the_images(server):
    ctx = server["spec"]["template"]["spec"]["securityContext"]
    assert f"{ctx['runAsUser']}:{ctx['runAsGroup']}" == os.environ["IMAGE_USER"]


def test_port_and_probes_follow_the_image_and_the_app(docs, server, settings, model_dir):
    ctr = container(server, "embedder")
    (port,) = ctr["ports"]
    assert port["name"] == "http" and str(port["containerPort"]) == os.environ["IMAGE_PORTS"]
    assert port["containerPort"] == settings.port
    routes = app_paths(model_dir)
    probes = {kind: ctr[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startupProbe": "/ready", "readinessProbe": "/ready", "livenessProbe": "/health"
    }
    assert all(p["path"] in routes and p["port"] == "http" for p in probes.values()), routes
    svc = the(docs, "Service", "embedder")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_selectors_reach_the_pods(docs, server):
    labels = server["spec"]["template"]["metadata"]["labels"]
    assert matches(SERVER, labels) and matches(server["spec"]["selector"]["matchLabels"], labels)
    assert matches(the(docs, "Service", "embedder")["spec"]["selector"], labels)
    assert matches(the(docs, "PodDisruptionBudget", "embedder")["spec"]["selector"]["matchLabels"], labels)
    assert matches(the(docs, "NetworkPolicy", "embedder")["spec"]["podSelector"]["matchLabels"], labels)
    for spread in server["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert matches(spread["labelSelector"]["matchLabels"], labels)
    target = the(docs, "HorizontalPodAutoscaler", "embedder")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "embedder")


def test_resources_follow_the_sizing_formula(server, settings):
    resources = container(server, "embedder")["resources"]
    cpus = float(resources["limits"]["cpu"])
    assert settings.call_workers == int(cpus) + 1, "EMBEDDER_WORKERS is CPUs + 1 (docs/scheduling.md, Threads)"
    assert memory_bytes(resources["limits"]["memory"]) >= sizing_limit_bytes(settings)


def test_hpa_scales_on_cpu_with_replicas_for_the_pdb(docs, server):
    hpa = the(docs, "HorizontalPodAutoscaler", "embedder")["spec"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] >= 2 == server["spec"]["replicas"]  # one may be disrupted, one still serves
    assert the(docs, "PodDisruptionBudget", "embedder")["spec"]["maxUnavailable"] == 1


def test_termination_outlasts_the_shutdown(server, settings):
    grace = server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > shutdown_budget_s(settings)
    strategy = server["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0  # a rollout never drops below the replicas serving


def test_secrets_are_referenced_and_mounted_where_the_settings_read_them(docs, server, config):
    assert not find(docs, "Secret"), "Secrets are created by the team, never shipped in the manifests"
    pod = server["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container(server, "embedder")["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    files = {"embedder-api-keys": config["EMBEDDER_API_KEYS_FILE"]}
    if "EMBEDDER_CACHE_URL" in config:
        files["embedder-redis"] = config["EMBEDDER_CACHE_PASSWORD_FILE"]
    for volume, secret in secrets.items():
        if secret in files:
            assert Path(files.pop(secret)).parent == Path(mounts[volume]), secret
    assert not files, f"settings read files from Secrets that are not mounted: {files}"


def test_redis_overlay_serves_the_cache_url(docs, config):
    redis = find(docs, "Deployment", "embedder-redis")
    if not redis:
        assert "EMBEDDER_CACHE_URL" not in config
        return
    url = config["EMBEDDER_CACHE_URL"]
    svc = the(docs, "Service", "embedder-redis")
    assert url.startswith(f"redis://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}/")
    assert matches(svc["spec"]["selector"], redis[0]["spec"]["template"]["metadata"]["labels"])
    command = " ".join(container(redis[0], "redis")["command"])
    assert "--maxmemory-policy allkeys-lru" in command and "$$(cat /run/secrets/embedder/redis/password)" in command
