"""Two builds of one commit, every step run again: the same layers and the same config, but for the times the
engine writes at export (the config's `created` and each history entry's; Dagger v0.21.8 has no epoch option).

`dagger call reproducible` mounts both OCI tarballs and sets IMAGE_TARBALLS=first,second. On a mismatch the
failure names the differing layers and, inside them, the entries that differ (name, size, mode, owner, time,
content hash), which is where a cause is found."""

from __future__ import annotations

import hashlib
import os
import tarfile

import pytest

from oci_support import read_image

TARBALLS = [p for p in os.environ.get("IMAGE_TARBALLS", "").split(",") if p]
pytestmark = pytest.mark.skipif(len(TARBALLS) != 2, reason="needs two builds: dagger call reproducible")
ENGINE_TIMES = ("created", "history")


def entries(path: str, blob: str) -> dict[str, tuple]:
    """Every entry of one layer: name -> (type, size, mode, uid, gid, mtime, link, content sha256)."""
    with tarfile.open(path) as outer, tarfile.open(fileobj=outer.extractfile(blob), mode="r:*") as layer:
        found = {}
        for m in layer:
            data = layer.extractfile(m).read() if m.isfile() else b""
            found[m.name] = (m.type, m.size, oct(m.mode), m.uid, m.gid, m.mtime, m.linkname, hashlib.sha256(data).hexdigest())
        return found


@pytest.fixture(scope="module")
def builds() -> list[tuple[dict, list[str]]]:
    return [read_image(p) for p in TARBALLS]


def test_same_layers(builds):
    (first, first_blobs), (second, second_blobs) = builds
    ids = [c["rootfs"]["diff_ids"] for c in (first, second)]
    for name, layer_ids in zip(("first", "second"), ids):
        print(f"\n{name} build, layer diff IDs:\n  " + "\n  ".join(layer_ids))
    if ids[0] == ids[1]:
        return
    report = []
    for n, (a, b) in enumerate(zip(*ids)):
        if a == b:
            continue
        ea, eb = entries(TARBALLS[0], first_blobs[n]), entries(TARBALLS[1], second_blobs[n])
        differ = sorted(k for k in ea.keys() | eb.keys() if ea.get(k) != eb.get(k))
        report.append(f"layer {n}: {len(differ)} entries differ, e.g.\n" + "\n".join(
            f"  {k}\n    first:  {ea.get(k)}\n    second: {eb.get(k)}" for k in differ[:8]))
    pytest.fail("the builds' layers differ:\n" + "\n".join(report) if report else f"layer counts differ: {ids}")


def test_same_config_but_the_engines_times(builds):
    (first, _), (second, _) = builds
    a, b = ({k: v for k, v in c.items() if k not in ENGINE_TIMES} for c in (first, second))
    assert a == b
    labels = a["config"]["Labels"]
    assert labels["org.opencontainers.image.created"] == b["config"]["Labels"]["org.opencontainers.image.created"]
    print(f"config identical but for {', '.join(ENGINE_TIMES)}; created label {labels['org.opencontainers.image.created']}")
