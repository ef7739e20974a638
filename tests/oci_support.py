"""Reading an OCI image tarball (as Dagger's Container.as_tarball writes it)."""

from __future__ import annotations

import json
import tarfile


def read_image(path: str) -> tuple[dict, list[str]]:
    """(image config, paths of its layer blobs in the tarball), through index -> (index ->) manifest."""
    with tarfile.open(path) as tar:
        def blob(digest: str) -> dict:
            return json.load(tar.extractfile(f"blobs/{digest.replace(':', '/')}"))

        node = json.load(tar.extractfile("index.json"))
        while "manifests" in node:
            node = blob(node["manifests"][0]["digest"])
        layers = [f"blobs/{layer['digest'].replace(':', '/')}" for layer in node["layers"]]
        return blob(node["config"]["digest"]), layers
