"""embedder's pipeline: model stage, slim runtime image, tests in containers, export and publish."""

import asyncio
import dataclasses
import enum
import secrets
import tomllib
from datetime import UTC, datetime
from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, Ignore, dag, field, function, object_type

from . import model as model_stage
from . import publish as publishing
from . import anymodel, browser, deploy, minimal, prebuilt, release, runtime, testing
from .ignore import SOURCE_IGNORE
from .toolchain import on, with_apt, with_uv


@dagger.enum_type
class Engine(enum.Enum):
    """Which inference engine the image ships (one; its model format only)."""

    OPENVINO = "openvino"
    """OpenVINO Runtime: bf16 where the CPU runs it natively (AVX512-BF16, AMX), else f32; checked at start"""
    ONNXRUNTIME = "onnxruntime"
    """ONNX Runtime, f32"""


BUDGET_DOC = ("largest acceptable image size, MB uncompressed (default: 290 on OpenVINO, 235 on ONNX Runtime, "
              "+ the shipped model files' size)")


#: The platforms `publish` and `multi-platform` build by default.
PLATFORMS = ["linux/amd64", "linux/arm64"]
ARM64 = "linux/arm64"
PLATFORMS_DOC = "platforms, e.g. linux/amd64 (default: linux/amd64 and linux/arm64)"


@object_type
class Embedder:
    """Builds, tests and ships the embedder image (sentence-transformers/all-MiniLM-L6-v2 on OpenVINO or ONNX
    Runtime)."""

    source: Annotated[dagger.Directory, DefaultPath("/"), Ignore(SOURCE_IGNORE), Doc("the repository")]
    commit: Annotated[dagger.GitRef, DefaultPath("/"), Doc("the git checkout, for the revision label and tag")]
    git_dir: Annotated[
        dagger.Directory, DefaultPath("/"), Ignore(["*", "!.git"]), Doc("the checkout's .git, for the commit time")
    ]
    base_image: Annotated[str, Doc("base image of every stage")] = field(default="python:3.13-slim")
    uv_image: Annotated[str, Doc("image that provides the uv binary (pins uv's version)")] = (
        "ghcr.io/astral-sh/uv:0.13.9"
    )
    model_repo: Annotated[str, Doc("Hugging Face model repo")] = "sentence-transformers/all-MiniLM-L6-v2"
    model_revision: Annotated[str, Doc("pinned model revision (commit sha)")] = (
        "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    )
    model_dir: Annotated[
        dagger.Directory | None,
        Doc("the model's files on disk instead of a download (air-gapped teams): checked against the same lock"),
    ] = None
    hf_endpoint: Annotated[str, Doc("Hugging Face Hub-compatible endpoint")] = "https://huggingface.co"
    hf_token: Annotated[dagger.Secret | None, Doc("Hugging Face token, for private or gated repos")] = None
    index_url: Annotated[str, Doc("Python package index (empty: PyPI)")] = ""
    torch_index_url: Annotated[str, Doc("index for torch in the model stage")] = (
        "https://download.pytorch.org/whl/cpu"
    )
    engine: Annotated[Engine, Doc("inference engine the image ships")] = Engine.OPENVINO
    registry_image: Annotated[str, Doc("registry image for the publish check")] = "registry:2"
    redis_image: Annotated[str, Doc("Redis image for the cache tests")] = "redis:7"
    source_date_epoch: Annotated[
        int | None,
        Doc("build time, seconds since 1970: the created label and every file time (default: the commit's)"),
    ] = None
    nonce: Annotated[str, Doc("any value forces every build step to run again (what `reproducible` does)")] = ""
    platform: Annotated[
        str,
        Doc("the image's platform, e.g. linux/arm64 (default: the engine's own); the model is exported once, "
            "natively, and the same model directory goes into every platform's image"),
    ] = ""
    base_ref: Annotated[
        str,
        Doc("build on a base from `publish-base`, REF@sha256:… (or a bare REF: the tag of this checkout's key); "
            "only the app layer and config are added"),
    ] = ""

    @property
    def served(self) -> dict[str, str]:
        """What the image serves, as the service tests expect it (EMBEDDER_EXPECT_*)."""
        return {"engine": self.engine.value}

    def with_nonce(self, ctr: dagger.Container) -> dagger.Container:
        """With a nonce, in the environment of every step that makes image content, so that they run again
        (never in the image's own environment)."""
        return ctr.with_env_variable("EMBEDDER_BUILD_NONCE", self.nonce) if self.nonce else ctr

    def base(self) -> dagger.Container:
        """The base image on the engine's platform, for the steps that arrange the image's layers (file times)."""
        return dag.container().from_(self.base_image).with_(self.with_nonce)

    def target(self) -> dagger.Container:
        """The base image on the image's platform: where the service is run to see what it loads."""
        return on(self.platform).from_(self.base_image).with_(self.with_nonce)

    def tools(self) -> dagger.Container:
        """The base image with uv and its cache, on the engine's platform: the start of every stage that makes
        nothing platform-specific (bytecode of app/, the SBOM, test runners) and of no image layer by itself."""
        return dag.container().from_(self.base_image).with_(with_uv(self.uv_image, self.index_url or None))

    async def target_platform(self) -> str:
        """The image's platform, e.g. linux/amd64."""
        return self.platform or str(await dag.default_platform())

    async def emulated(self) -> bool:
        """Whether the image's platform is not the engine's own (its steps run under emulation)."""
        return await self.target_platform() != str(await dag.default_platform())

    def target_tools(self) -> dagger.Container:
        """As tools(), on the image's platform: the virtualenv's wheels are that platform's."""
        return on(self.platform).from_(self.base_image).with_(
            with_uv(self.uv_image, self.index_url or None, self.platform))

    @function
    async def epoch(self) -> int:
        """The build's time: --source-date-epoch, else the commit's committer time (git, in a container)."""
        if self.source_date_epoch is not None:
            return self.source_date_epoch
        revision = await self.commit.commit()
        git = dag.container().from_(self.base_image).with_(with_apt("git"))
        out = await (
            git.with_mounted_directory("/repo/.git", self.git_dir.directory(".git"))
            .with_exec(["git", "-c", "safe.directory=*", "-C", "/repo", "show", "-s", "--format=%ct", revision])
            .stdout()
        )
        return int(out.strip())

    @function
    async def model(self) -> dagger.Directory:
        """The versioned model directory: pinned download (or --model-dir) checked against the model's lock,
        ONNX and OpenVINO IR (float16 weights), each verified against sentence-transformers on the check sentences
        and the held-out texts, embedding.json (what the service needs); the image keeps its engine's graph."""
        # The exporter's toolchain (torch, ~5 GB) is a tool, not content: a nonce re-runs what comes after it.
        ctr = (await self.exporter()).with_(self.with_nonce)
        lock = await model_stage.require_lock(self.source, self.model_repo, self.model_revision)
        ctr = ctr.with_(model_stage.with_export_code(self.source, lock))
        if self.model_dir is not None:
            ctr = model_stage.from_directory(ctr, lock, self.model_dir)
        else:
            ctr = model_stage.download(ctr, lock, self.hf_endpoint, self.hf_token)
        return model_stage.build_model_dir(ctr, lock)

    async def exporter(self) -> dagger.Container:
        """torch, sentence-transformers and onnx (the export group; torch's CPU wheels from --torch-index-url)."""
        separate = model_stage.separate_torch_index(self.torch_index_url, self.index_url)
        cpu_only = model_stage.cuda_packages(await self.source.file("uv.lock").contents()) if separate else []
        requirements = model_stage.export_requirements(self.tools(), self.source, cpu_only)
        return model_stage.exporter(self.tools(), requirements, self.torch_index_url if separate else None)

    @function
    async def lock(self) -> dagger.File:
        """A lock for --model-repo at --model-revision: the files the export needs (safetensors over pickles, no
        other exports), each with sha256 and size, the license and the policy; from --hf-endpoint, or from
        --model-dir. Trust on first use: review it and commit it at models/REPO/REVISION.json."""
        locker = model_stage.locker(self.tools(), self.source)
        return model_stage.make_lock(locker, self.model_repo, self.model_revision, self.hf_endpoint, self.hf_token,
                                     self.model_dir)

    @function
    async def build(self) -> dagger.Container:
        """The runtime image: non-root, no compiler, no torch, healthcheck on /ready; it carries its SBOM. With
        --base-ref, only the app layer and the config are added to that published base."""
        revision, epoch, here = await asyncio.gather(self.commit.commit(), self.epoch(), self.base_inputs())
        if self.base_ref:
            ref = prebuilt.with_key_tag(self.base_ref, here)
            base = await prebuilt.checked(prebuilt.pull(ref, self.platform), ref, here)
        else:
            base = await self.runtime_base(epoch, here)
        return await self.on_base(base, revision, epoch)

    @function
    async def sbom(self) -> dagger.File:
        """The image's CycloneDX 1.6 SBOM: Python distributions (licenses, wheel hashes), the interpreter, Debian
        packages, the model with its files' sha256. The image carries the same file (label io.embedder.sbom)."""
        return (await self.build()).file(release.SBOM_PATH)

    async def base_inputs(self) -> dict[str, str]:
        """What the published base's content depends on (its content key is their hash)."""
        return await prebuilt.inputs(self.source, self.base_image, self.uv_image, self.model_repo,
                                     self.model_revision, self.engine.value, self.platform)

    async def runtime_base(self, epoch: int, found: dict[str, str]) -> dagger.Container:
        """Everything but app/, on no base image: the system layer (interpreter, standard library, the shared
        libraries the service loads, accounts, dpkg status: minimal.py), the model, the virtualenv and the
        runtime config, labelled with the content key of ``found`` (base_inputs()); file times are ``epoch``
        (the system files keep the base image's, which its bytecode checks)."""
        path = runtime.model_path(self.model_repo, self.model_revision)
        model = runtime.only_served(await self.model(), self.engine.value)
        venv = runtime.virtualenv(self.target_tools().with_(self.with_nonce), self.source, self.engine.value)
        model_tree = runtime.layer(self.base(), path, model, epoch)
        pruned = runtime.prune(self.engine.value)
        venv_tree = runtime.layer(self.base(), runtime.VENV, venv, epoch, exclude=pruned)
        env = {"EMBEDDER_MODEL_DIR": path, "EMBEDDER_ENGINE": self.engine.value,
               **await minimal.inherited_env(on(self.platform).from_(self.base_image))}  # not the nonce

        def configured(ctr: dagger.Container) -> dagger.Container:
            for name, value in env.items():
                ctr = ctr.with_env_variable(name, value)
            return ctr.with_(runtime.with_runtime_config)

        # What the service loads, seen on the base image with the image's content, then picked from it. The
        # stage takes the trees before their times are set, so that a new commit alone does not run it again
        # (minutes under emulation).
        stage = (
            self.target().with_directory(path, model)
            .with_directory(runtime.VENV, venv, exclude=pruned)
            .with_(configured)
        )
        record = minimal.loaded(stage.with_(testing.light_start) if await self.emulated() else stage, self.source,
                                self.source.directory("app").without_directory("export"))
        generator = release.generator(self.tools(), self.source).with_(self.with_nonce)
        system = minimal.system_tree(generator, stage, record, epoch)
        # Layers from the least to the most often changed; the app's comes last (on_base).
        ctr = (
            on(self.platform).with_directory("/", system)  # no base image
            .with_label("io.embedder.model.repo", self.model_repo)
            .with_label("io.embedder.model.revision", self.model_revision)
            .with_label("io.embedder.engine", self.engine.value)
            .with_directory("/", model_tree)
            .with_directory("/", venv_tree)
            .with_(configured)
        )
        return prebuilt.labelled(ctr, found)

    async def on_base(self, base: dagger.Container, revision: str, epoch: int) -> dagger.Container:
        """The commit's labels and one layer on ``base``: the app code with its bytecode, and the image's SBOM
        (it names the commit, so it changes with the code)."""
        project = tomllib.loads(await self.source.file("pyproject.toml").contents())["project"]
        for name, value in runtime.oci_labels(project, self.model_repo, revision, epoch).items():
            base = base.with_label(name, value)
        generator = release.generator(self.tools(), self.source).with_(self.with_nonce)
        sbom = await release.sbom(generator, base, revision, epoch, self.engine.value)
        app = runtime.app_code(self.tools().with_(self.with_nonce), self.source)
        top = release.with_sbom(runtime.app_tree(app), sbom)
        return base.with_directory("/", runtime.layer(self.base(), "/", top, epoch)).with_label(
            release.SBOM_LABEL, release.SBOM_PATH
        )

    @function
    async def serve(self) -> dagger.Service:
        """The image as a service: `dagger call serve up --ports 8000:8000`."""
        return (await self.build()).as_service(use_entrypoint=True)

    @function
    @dagger.check
    async def unit_tests(self) -> str:
        """The pytest suite (tests/, minus the suites of the other checks) with the model stage's output mounted and
        a Redis; with the release tools, whose picker and SBOM reader it tests (tests/test_minimal_rootfs.py)."""
        ctr = testing.runner(self.tools(), self.source, await self.model(), groups=("test", "release"))
        ctr = ctr.with_(testing.with_redis(self.redis_image))
        return await testing.pytest(ctr, "tests", *(f"--ignore=tests/{d}" for d in testing.CHECK_SUITES))

    @function(cache="never")
    @dagger.check
    async def integration_tests(self) -> str:
        """tests/integration/ against the built image running as a service."""
        ctr = testing.runner(self.tools(), self.source, await self.model())
        ctr = testing.with_service(ctr, await self.build(), self.served)
        return await testing.pytest(ctr, "tests/integration")

    @function
    @dagger.check
    async def image_checks(
        self, size_budget_mb: Annotated[int | None, Doc(BUDGET_DOC)] = None
    ) -> str:
        """tests/image/: user, healthcheck, labels, port, no compilers, no torch/nvidia/triton, size; the minimal
        image: no shell, package manager or perl, every ELF's libraries inside it, current bytecode; and in the
        image itself, with its own interpreter, the web stack imports and the model meets the contract on the
        default engine and precision (tests/image/in_image.py)."""
        model = await self.model()
        if size_budget_mb is None:
            size_budget_mb = runtime.size_budget_mb(await model.file("model.lock.json").contents(), self.engine.value)
        image = await self.build()
        ctr = testing.runner(self.tools(), self.source, model, groups=("test", "release"))
        checks, inside = await asyncio.gather(
            testing.pytest(testing.with_image(ctr, image, size_budget_mb, await self.target_platform()), "-s",
                           "tests/image"),
            testing.in_image(image, self.source.file("tests/image/in_image.py")),
        )
        return f"in the image: {inside}{checks}"

    @function(cache="never")
    @dagger.check
    async def arm_check(self) -> str:
        """The linux/arm64 image (under emulation on an amd64 engine), kept small: its image-checks (size, no
        torch, uid 1000, the minimal runtime, an embedding inside it) and its SBOM's check, then it runs as a
        service, gets ready, and its /embed vectors meet the contract against sentence-transformers' reference."""
        arm = dataclasses.replace(self, platform=ARM64)
        checks, sbom = await asyncio.gather(arm.image_checks(), arm.sbom_check())
        image = await arm.build()
        if await arm.emulated():
            image = image.with_(testing.light_start).with_(testing.patient_healthcheck)
        ctr = testing.with_service(testing.runner(self.tools(), self.source, await self.model()), image, arm.served)
        smoke = await testing.pytest(ctr, "tests/integration/test_image_service.py", "-k",
                                     "ready_name_model or sentence_transformers_reference")
        return f"{checks}\n{sbom}\n{smoke}"

    @function(cache="never")
    @dagger.check
    async def fleet_check(self) -> str:
        """Two replicas with API keys share a Redis: a hit across replicas, 401 without a key, Redis down and back."""
        ctr = testing.runner(self.tools(), self.source, await self.model())
        return await testing.fleet_check(ctr, await self.build(), self.redis_image)

    @function(cache="never")
    @dagger.check
    async def docs_check(self) -> str:
        """tests/docs/: /docs and /redoc render in headless Chromium that can reach the service and no other host."""
        return await browser.docs_check(
            self.tools(), self.source, await self.model(), await self.build(), self.served
        )

    @function
    async def manifests(
        self,
        image: Annotated[str, Doc("the image pinned by digest, REF@sha256:<hex>, as `publish` prints it")],
    ) -> dagger.Directory:
        """deploy/k8s rendered by kustomize and pinned to the image: base.yaml, with-redis.yaml, and kustomize/
        (the pinned tree, for `kubectl apply -k`)."""
        return deploy.render(deploy.kustomize(self.base_image), self.source, image)

    @function
    @dagger.check
    async def sbom_check(self) -> str:
        """tests/release/: the SBOM the image carries validates against CycloneDX's schema, lists what the image
        holds, and every Python distribution's and the model's license passes the gate (release/licenses.toml)."""
        ctr = testing.runner(self.tools(), self.source, await self.model(), groups=("test", "release"))
        ctr = await release.with_image_sbom(ctr, await self.build())
        ctr = ctr.with_env_variable("EMBEDDER_EXPECT_ENGINE", self.engine.value)
        return await testing.pytest(ctr, "-s", "tests/release")

    @function
    @dagger.check
    async def manifest_check(self) -> str:
        """tests/deploy/: the rendered manifests against Kubernetes' schemas, restricted Pod Security, and the
        image and app (port, user, probe paths, memory sizing, shutdown timings)."""
        ctr = testing.runner(self.tools(), self.source, await self.model())
        ctr = await deploy.with_manifests(ctr, await self.manifests(deploy.EXAMPLE_REF), await self.build())
        return await testing.pytest(ctr, "tests/deploy")

    @function(cache="never")
    @dagger.check
    async def memory_check(self) -> str:
        """tests/memory/: the image, sent the worst load the defaults admit, stays under the manifests' memory
        limit by its cgroup's peak (Dagger sets no limit; .ci/run repeats it under `docker run --memory`)."""
        ctr = testing.runner(self.tools(), self.source, await self.model())
        ctr = testing.with_service(ctr, await self.build(), self.served)
        return await testing.pytest(ctr, "-s", "tests/memory")

    @function(cache="never")
    @dagger.check
    async def publish_check(self) -> str:
        """Publish to a registry:2 with htpasswd auth: wrong password fails and pushes nothing; the right one
        pushes one index of both platforms, and the registry serves it with the platform digests publish prints."""
        return await testing.publish_check(self.tools(), await self.variants(PLATFORMS), self.registry_image)

    @function
    @dagger.check
    async def export_check(self) -> str:
        """tests/export/ where torch is: tiny models of every pooling mode, Dense layers, no token_type_ids and
        prompts, exported and compared with sentence-transformers (ONNX within 1e-5, OpenVINO IR min cosine 0.9999)."""
        lock = await self.source.file("uv.lock").contents()
        ctr = anymodel.with_tests(await self.exporter(), self.source, lock)
        return await testing.pytest(ctr, "--noconftest", "-s", "tests/export")

    @function(cache="never")
    @dagger.check
    async def any_model_check(self) -> str:
        """A model that is not all-MiniLM-L6-v2 (tiny, RoBERTa-style, CLS pooling, Dense, no Normalize, prompts)
        from disk (--model-dir) with a lock made by `lock`, built and served: tests/anymodel/."""
        return await anymodel.served_check(self, await self.exporter())

    @function(cache="never")
    @dagger.check
    async def base_check(self) -> str:
        """Publish the base to a registry:2 with auth and build on it as --base-ref does: the result has the base's
        layers plus one (the full build's layers) and serves; a base of other inputs is refused, naming them."""
        lock = await self.source.file("uv.lock").contents()
        others = {  # a checkout that differs in one input, by the input's name
            "engine": dataclasses.replace(self, engine=next(e for e in Engine if e != self.engine)),
            "uv.lock": dataclasses.replace(self, source=self.source.with_new_file("uv.lock", lock + "\n")),
        }
        return await testing.base_check(self, others)

    @function(cache="never")
    async def test(
        self, size_budget_mb: Annotated[int | None, Doc(BUDGET_DOC)] = None
    ) -> str:
        """Everything: unit suite, image, publish, integration, fleet, docs, manifest, memory, SBOM, base, export
        and any-model checks.
        Fails if any fails."""
        parts = {
            "unit": self.unit_tests(),
            "image": self.image_checks(size_budget_mb),
            "publish": self.publish_check(),
            "integration": self.integration_tests(),
            "fleet": self.fleet_check(),
            "docs": self.docs_check(),
            "manifests": self.manifest_check(),
            "memory": self.memory_check(),
            "sbom": self.sbom_check(),
            "base": self.base_check(),
            "export": self.export_check(),
            "any-model": self.any_model_check(),
            "arm64": self.arm_check(),
        }
        return testing.report(parts.keys(), await asyncio.gather(*parts.values(), return_exceptions=True))

    @function(cache="never")
    async def reproducible(self) -> str:
        """Build the image twice with every step that makes its content forced to run again (a nonce in their
        environment: model download and export, virtualenv, bytecode, user, layers, SBOM; the exporter's torch
        toolchain is installed once); fails unless both have the same layers (diff IDs) and the same config but
        for the times the engine writes at export (created, history). Prints both sets. Not part of test."""
        builds = [dataclasses.replace(self, nonce=secrets.token_hex(8)) for _ in range(2)]
        first, second = await asyncio.gather(*(b.build() for b in builds))
        ctr = testing.with_tarballs(testing.runner(self.tools(), self.source, await self.model()),
                                    "IMAGE_TARBALLS", first, second)
        return await testing.pytest(ctr, "-s", "tests/reproducible")

    async def variants(self, platforms: list[str]) -> list[dagger.Container]:
        """The image for each of ``platforms``, the model exported once (natively) for all."""
        return list(await asyncio.gather(*(dataclasses.replace(self, platform=p).build() for p in platforms)))

    @function
    async def multi_platform(
        self, platforms: Annotated[list[str] | None, Doc(PLATFORMS_DOC)] = None
    ) -> dagger.File:
        """The image for several platforms as one OCI tarball (an index): `dagger call multi-platform export
        --path image.tar`. `docker load` takes one platform from it (docs/image.md, Platforms)."""
        first, *rest = await self.variants(platforms or PLATFORMS)
        return first.as_tarball(platform_variants=rest)

    @function(cache="never")
    async def publish(
        self,
        address: Annotated[str, Doc("image address without tag, e.g. registry.example.com/team/embedder")],
        username: Annotated[str, Doc("registry user")],
        password: Annotated[dagger.Secret, Doc("registry password or token")],
        tags: Annotated[list[str] | None, Doc("tags (default: version, git sha, date, latest)")] = None,
        platforms: Annotated[list[str] | None, Doc(PLATFORMS_DOC)] = None,
    ) -> str:
        """Push the image for every platform as one index under several tags; prints each reference with the
        index's digest, then each platform's manifest digest."""
        images = await self.variants(platforms or PLATFORMS)
        if not tags:
            version, revision = await asyncio.gather(
                images[0].label("org.opencontainers.image.version"), images[0].label("org.opencontainers.image.revision")
            )
            tags = [version, revision[:12], datetime.now(UTC).strftime("%Y%m%d"), "latest"]
        refs = await publishing.push(images[0], address, tags, username, password, variants=images[1:])
        manifests = await publishing.platform_digests(self.tools(), images)
        sbom = f"SBOM (CycloneDX): {release.SBOM_PATH} in the image (label {release.SBOM_LABEL}); `dagger call sbom`"
        return "\n".join([*refs, *(f"  {p}: {d}" for p, d in manifests.items()), sbom]) + "\n"

    @function
    async def base_key(self) -> str:
        """The content key of this checkout's base (the tag `publish-base` gives it: its first 16 digits), then
        the inputs it is computed from."""
        found = await self.base_inputs()
        return f"{prebuilt.key(found)}\n" + "".join(f"{name}: {value}\n" for name, value in found.items())

    @function(cache="never")
    async def publish_base(
        self,
        address: Annotated[str, Doc("base address without tag, e.g. registry.example.com/team/embedder-base")],
        username: Annotated[str, Doc("registry user (none: a registry without login)")] = "",
        password: Annotated[dagger.Secret | None, Doc("registry password or token")] = None,
    ) -> str:
        """Push the base for code-only builds (everything but app/: OS, user, virtualenv, model, runtime config)
        tagged with its content key, and with the key and today's date; prints each REF@sha256 and the key.
        `dagger call --base-ref REF@sha256:… build` then adds only the app layer."""
        epoch, found = await asyncio.gather(self.epoch(), self.base_inputs())
        base = await self.runtime_base(epoch, found)
        tags = prebuilt.tags(found, datetime.now(UTC).strftime("%Y%m%d"))
        refs = await publishing.push(base, address, tags, username, password)
        return "\n".join([*refs, f"key: {prebuilt.key(found)}"]) + "\n"
