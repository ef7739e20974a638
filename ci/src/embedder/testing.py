"""Test containers: the unit suite, integration tests against the image as a service, image checks."""

import asyncio
import hashlib
import secrets
from collections.abc import Callable

import dagger
from dagger import dag

from . import prebuilt, publish
from .runtime import PORT
from .toolchain import PATH, WORKDIR, on, with_project_files

MODEL_MOUNT = "/model"
SERVICE_ALIAS = "embedder"
REDIS_ALIAS = "redis"
REDIS_PORT = 6379
REDIS_CONF = "/run/secrets/redis.conf"
GATE_PORT, GATE_CONTROL_PORT = 6380, 8080
#: tests/ folders that need more than the unit runner (the image, services, a browser, rendered manifests):
#: each has its own check, and the unit suite leaves them out.
CHECK_SUITES = ("integration", "image", "fleet", "docs", "deploy", "memory", "reproducible", "release", "base",
                "anymodel")


def runner(tools: dagger.Container, source: dagger.Directory, model: dagger.Directory,
           groups: tuple[str, ...] = ("test",)) -> dagger.Container:
    """The runtime dependencies plus the test group (and any other ``groups``), then the source tree, with the
    model stage's output."""
    return (
        tools.with_(with_project_files(source))
        .with_exec(["uv", "sync", "--no-dev", "--no-default-groups", "--no-install-project",
                    *(flag for group in groups for flag in ("--group", group))])
        .with_env_variable("PATH", PATH)
        .with_directory(WORKDIR, source)
        .with_mounted_directory(MODEL_MOUNT, model)
        .with_env_variable("EMBEDDER_TEST_MODEL_DIR", MODEL_MOUNT)
    )


async def pytest(ctr: dagger.Container, *args: str) -> str:
    """pytest's output; a failing run raises dagger.ExecError carrying that output."""
    return await ctr.with_exec(["python", "-m", "pytest", "-p", "no:cacheprovider", "-rs", *args]).stdout()


def redis(redis_image: str, name: str) -> tuple[dagger.Service, dagger.Secret]:
    """A throwaway Redis for tests and its password: generated here, handed over only as Secrets (the server
    reads it from a mounted config file, never from its arguments). ``name`` keys the secrets (and so the
    cache of what uses them): the same name gives the same password."""
    password = hashlib.sha256(f"embedder-test-redis:{name}".encode()).hexdigest()
    conf = dag.set_secret(f"{name}-redis-conf", f"requirepass {password}\n")
    service = (
        dag.container()
        .from_(redis_image)
        .with_mounted_secret(REDIS_CONF, conf, mode=0o444)
        .with_exposed_port(REDIS_PORT)
        .as_service(args=["redis-server", REDIS_CONF], use_entrypoint=True)
    )
    return service, dag.set_secret(f"{name}-redis-password", password)


def with_redis(redis_image: str) -> Callable[[dagger.Container], dagger.Container]:
    """Bind a password-protected Redis for tests/test_cache.py (EMBEDDER_TEST_REDIS_URL and _PASSWORD)."""

    def apply(ctr: dagger.Container) -> dagger.Container:
        service, password = redis(redis_image, "unit-tests")
        return (
            ctr.with_service_binding(REDIS_ALIAS, service)
            .with_env_variable("EMBEDDER_TEST_REDIS_URL", f"redis://{REDIS_ALIAS}:{REDIS_PORT}/0")
            .with_secret_variable("EMBEDDER_TEST_REDIS_PASSWORD", password)
        )

    return apply


async def fleet_check(ctr: dagger.Container, image: dagger.Container, redis_image: str) -> str:
    """Two replicas of the image, with API keys, share a password-protected Redis behind tests/fleet/gate.py
    (Dagger stops every service bound to a stopped one, so the gate makes Redis unreachable instead): a hit
    across replicas, 401 without a key; Redis unreachable (every request 200, /ready degraded); back
    (written and hit again)."""
    nonce = secrets.token_hex(4)
    store, password = redis(redis_image, f"fleet-{nonce}")
    key = dag.set_secret(f"fleet-api-key-{nonce}", secrets.token_urlsafe(24))
    gate = (
        ctr.with_service_binding("redis-store", store)
        .with_env_variable("GATE_UPSTREAM", f"redis-store:{REDIS_PORT}")
        .with_exposed_port(GATE_PORT)
        .with_exposed_port(GATE_CONTROL_PORT)
        .as_service(args=["python", "tests/fleet/gate.py"])
    )

    def replica(name: str) -> dagger.Service:
        return (
            image.with_service_binding(REDIS_ALIAS, gate)
            .with_env_variable("EMBEDDER_CACHE_URL", f"redis://{REDIS_ALIAS}:{GATE_PORT}/0")
            .with_secret_variable("EMBEDDER_CACHE_PASSWORD", password)
            .with_secret_variable("EMBEDDER_API_KEYS", key)
            .with_env_variable("EMBEDDER_CACHE_BREAKER_S", "2")
            # Sharing is under test, not latency: the default 50 ms per cache call can pass on a machine busy
            # with the other checks, which opens the breaker and skips the write the test waits for.
            .with_env_variable("EMBEDDER_CACHE_TIMEOUT_MS", "2000")
            .with_env_variable("FLEET_REPLICA", f"{name}-{nonce}")  # two distinct services
            .as_service(use_entrypoint=True)
        )

    runner = (
        ctr.with_service_binding("replica-a", replica("a"))
        .with_service_binding("replica-b", replica("b"))
        .with_service_binding("gate", gate)
        .with_env_variable("FLEET_A", f"http://replica-a:{PORT}")
        .with_env_variable("FLEET_B", f"http://replica-b:{PORT}")
        .with_env_variable("FLEET_GATE", f"http://gate:{GATE_CONTROL_PORT}")
        .with_secret_variable("FLEET_KEY", key)
    )
    return await pytest(runner, "tests/fleet")


#: Under emulation (OpenVINO's calls measured ~320x slower under qemu) the call budget is cut to one max-length
#: text per call and the call-overhead measurement after /ready is skipped, for the service steps of a test or
#: of the build's probe, never in the image.
LIGHT_START = {"EMBEDDER_MAX_BATCH_TOKENS": "256", "EMBEDDER_CALL_OVERHEAD_TOKENS": "200"}


def light_start(ctr: dagger.Container) -> dagger.Container:
    for name, value in LIGHT_START.items():
        ctr = ctr.with_env_variable(name, value)
    return ctr


def patient_healthcheck(ctr: dagger.Container) -> dagger.Container:
    """The image's healthcheck with a start period for an emulated start (minutes, not seconds)."""
    return ctr.with_docker_healthcheck(["python", "-m", "app.healthcheck"], interval="10s", timeout="10s",
                                       start_period="1200s", start_interval="5s", retries=3)


def with_image(ctr: dagger.Container, image: dagger.Container, size_budget_mb: int,
               platform: str) -> dagger.Container:
    return (
        ctr.with_mounted_file("/image/image.tar", image.as_tarball())
        .with_env_variable("IMAGE_PLATFORM", platform)
        .with_mounted_directory("/image/rootfs", image.rootfs())
        .with_env_variable("IMAGE_TARBALL", "/image/image.tar")
        .with_env_variable("IMAGE_ROOTFS", "/image/rootfs")
        .with_env_variable("IMAGE_SIZE_BUDGET_MB", str(size_budget_mb))
    )


async def in_image(image: dagger.Container, script: dagger.File) -> str:
    """``script`` run by the image's own interpreter, as the image's user, in its environment (it has no shell)."""
    return await image.with_mounted_file("/check/in_image.py", script).with_exec(
        ["python", "/check/in_image.py"]).stdout()


def with_tarballs(ctr: dagger.Container, env: str, *images: dagger.Container) -> dagger.Container:
    """Each image's OCI tarball mounted, their paths in ``env`` (comma-separated)."""
    paths = [f"/images/{n}.tar" for n in range(len(images))]
    for path, image in zip(paths, images):
        ctr = ctr.with_mounted_file(path, image.as_tarball())
    return ctr.with_env_variable(env, ",".join(paths))


def with_service(ctr: dagger.Container, image: dagger.Container, served: dict[str, str]) -> dagger.Container:
    """The image as a service bound to ``ctr``; ``served`` ({"engine": …}) as EMBEDDER_EXPECT_ENGINE."""
    ctr = ctr.with_service_binding(SERVICE_ALIAS, image.as_service(use_entrypoint=True))
    for name, value in served.items():
        ctr = ctr.with_env_variable(f"EMBEDDER_EXPECT_{name.upper()}", value)
    return (
        ctr.with_env_variable("EMBEDDER_BASE_URL", f"http://{SERVICE_ALIAS}:{PORT}")
        .with_env_variable("CACHE_BUSTER", secrets.token_hex(8))  # a service test always runs against a fresh start
    )


async def publish_check(tools: dagger.Container, images: list[dagger.Container], registry_image: str) -> str:
    """A registry:2 with htpasswd auth: a wrong password fails loudly and leaves it empty; the right one
    pushes one index of ``images`` (one per platform), and the registry serves that index, with each platform's
    manifest digest as publish prints it."""
    user, right = "ci", dag.set_secret(f"registry-pw-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    wrong = dag.set_secret(f"registry-wrong-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    svc = await publish.registry(registry_image, await publish.htpasswd(tools, user, right)).start()
    address = f"localhost:{publish.REGISTRY_PORT}/{publish.REPO}"
    first, *rest = images
    try:
        try:
            await publish.push(first, address, ["wrong-password"], user, wrong, svc, variants=rest)
        except dagger.QueryError as e:
            rejected = str(e).splitlines()[0]
        else:
            raise AssertionError("a push with a wrong password succeeded")
        held = await publish.query(tools, svc, user, right)
        assert held["catalog"]["repositories"] in ([], None), f"wrong password left {held} in the registry"
        (ref,) = await publish.push(first, address, ["check"], user, right, svc, variants=rest)
        served = await publish.query(tools, svc, user, right, "check")
        assert ref.endswith("@" + served["digest"]), f"pushed {ref} but the registry serves {served['digest']}"
        held, printed = publish.by_platform(served["manifests"]), await publish.platform_digests(tools, images)
        assert held == printed, f"the index holds {held}, publish prints {printed}"
    finally:
        await svc.stop()
    return (f"publish: wrong password rejected ({rejected[:120]}), registry left empty; "
            f"right password pushed {ref}, registry digest matches; platforms in the index: "
            + ", ".join(f"{p} {d[:19]}…" for p, d in held.items()))


async def base_check(embedder, others: dict) -> str:
    """`embedder`'s base pushed to a registry:2 with auth and pulled back; the image built on it (as --base-ref
    builds) checked by tests/base against the base and the full build, and served; each of ``others`` (name of
    the input it changes -> an Embedder) refused, its name in the refusal."""
    revision, epoch, here = await asyncio.gather(embedder.commit.commit(), embedder.epoch(), embedder.base_inputs())
    base = await embedder.runtime_base(epoch, here)
    user, password = "ci", dag.set_secret(f"base-registry-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    line = await publish.htpasswd(embedder.tools(), user, password)
    svc = await publish.registry(embedder.registry_image, line, prebuilt.CHECK_PORT).start()
    address = f"localhost:{prebuilt.CHECK_PORT}/embedder-base"
    try:
        pushed = await publish.push(base, address, prebuilt.tags(here, "check"), user, password, svc)
        ref = prebuilt.with_key_tag(address, here)  # a bare repository: the tag of this checkout's key
        pulled = on(embedder.platform).with_registry_auth(publish.registry_host(address), user, password).from_(
            ref, registry_service=svc)
        image = await embedder.on_base(await prebuilt.checked(pulled, ref, here), revision, epoch)
        refusals = {name: await prebuilt.refusal(pulled, ref, await other.base_inputs())
                    for name, other in others.items()}
        unnamed = [name for name, text in refusals.items() if name not in text]
        assert not unnamed, f"refusals that do not name what differs: {refusals}"
        ctr = runner(embedder.tools(), embedder.source, await embedder.model())
        for name, built in {"base": pulled, "on_base": image, "full": await embedder.build()}.items():
            ctr = ctr.with_mounted_file(f"/images/{name}.tar", built.as_tarball()).with_env_variable(
                f"{name.upper()}_TARBALL", f"/images/{name}.tar")
        out = await pytest(with_service(ctr, image, embedder.served), "-s", "tests/base")
    finally:
        await svc.stop()
    refused = "".join(f"refused ({n}): {t}\n" for n, t in refusals.items())
    return "pushed " + ", ".join(pushed) + f"; built on {ref}\n" + refused + out  # pytest's summary last


def report(names, results) -> str:
    """One section per part, in order; raises with all of them if any failed."""
    sections, failed = [], []
    for name, result in zip(names, results):
        if isinstance(result, BaseException):
            failed.append(name)
            if isinstance(result, dagger.ExecError):
                text = f"{result.stdout}\n{result.stderr[-2000:]}"
            else:
                text = str(result)
            sections.append(f"== {name}: FAILED\n{text}")
        else:
            sections.append(f"== {name}: ok\n{result.strip()}")
    if failed:
        raise RuntimeError("\n".join(sections) + f"\nfailed: {', '.join(failed)}")
    return "\n".join(sections) + "\n"
