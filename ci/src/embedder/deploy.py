"""Deployment files: the Kubernetes manifests rendered with kustomize and pinned to an image digest, and the
checks that keep them and deploy/compose.yaml in step with the image and the app."""

import hashlib
import re

import dagger
from dagger import dag

from .toolchain import with_apt

K8S = "deploy/k8s"
OVERLAYS = {"base": "base", "with-redis": "overlays/with-redis"}
#: The image name the manifests use as a placeholder (deploy/k8s/base/deployment.yaml).
IMAGE_NAME = "embedder"
PINNED = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
#: What the manifest check renders with: any well-formed digest does, the check asserts it is the one used.
EXAMPLE_REF = "registry.example.com/team/embedder@sha256:" + hashlib.sha256(b"embedder manifests").hexdigest()


def check_ref(image: str) -> str:
    """The reference, or a ValueError naming the fix: manifests are only ever pinned by digest."""
    if not PINNED.match(image):
        raise ValueError(
            f"--image {image!r} is not pinned by digest: pass REF@sha256:<64 hex>, as `dagger call publish` "
            "prints it (a tag can move; a digest cannot)"
        )
    return image


def kustomize(base_image: str) -> dagger.Container:
    """Debian's kustomize (the base image's release pins its version)."""
    return dag.container().from_(base_image).with_(with_apt("kustomize"))


def render(tool: dagger.Container, source: dagger.Directory, image: str) -> dagger.Directory:
    """deploy/k8s with the image set to ``image`` in the base (so every overlay inherits it), and each
    kustomization rendered: ``<name>.yaml`` per overlay plus ``kustomize/``, the pinned tree for
    ``kubectl apply -k``."""
    ctr = (
        tool.with_directory("/k8s", source.directory(K8S))
        .with_workdir("/k8s/base")
        .with_exec(["kustomize", "edit", "set", "image", f"{IMAGE_NAME}={check_ref(image)}"])
        .with_workdir("/k8s")
    )
    out = dag.directory().with_directory("kustomize", ctr.directory("/k8s"))
    for name, path in OVERLAYS.items():
        rendered = ctr.with_exec(["kustomize", "build", path], redirect_stdout=f"/{name}.yaml")
        out = out.with_file(f"{name}.yaml", rendered.file(f"/{name}.yaml"))
    return out


async def with_manifests(ctr: dagger.Container, manifests: dagger.Directory, image: dagger.Container):
    """tests/deploy's inputs: the rendered manifests, the reference they must be pinned to, and what the image
    says about itself (exposed port, user), so that the manifests cannot drift from it."""
    ports = [await p.port() for p in await image.exposed_ports()]
    return (
        ctr.with_mounted_directory("/manifests", manifests)
        .with_env_variable("MANIFESTS_DIR", "/manifests")
        .with_env_variable("MANIFESTS_IMAGE", EXAMPLE_REF)
        .with_env_variable("IMAGE_PORTS", ",".join(map(str, ports)))
        .with_env_variable("IMAGE_USER", await image.user())
    )
