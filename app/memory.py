"""The container's memory as its cgroup counts it: now, at its peak, and its limit.

The kernel OOM-kills a container on its cgroup's count, which is more than the process' RSS
(page cache of the model file, tmpfs, every process in it). ``docker run --memory`` and
Kubernetes' memory limit set it; cgroup v2 has ``memory.current``, ``memory.peak`` (kernel
5.19+) and ``memory.max``, v1 ``memory.usage_in_bytes``, ``memory.max_usage_in_bytes`` and
``memory.limit_in_bytes``. A container usually sees its own cgroup at the mount's root; on a
host the process' cgroup path is followed. Read at every scrape (``/metrics``):
``embedder_memory_{usage,peak,limit}_bytes``, NaN where the kernel says nothing.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from app.cpus import CGROUP_ROOT, PROC_CGROUP

#: v1 reports "no limit" as a number near 2**63.
UNLIMITED = 1 << 62
FILES = {
    "v2": {"usage": "memory.current", "peak": "memory.peak", "limit": "memory.max"},
    "v1": {"usage": "memory.usage_in_bytes", "peak": "memory.max_usage_in_bytes", "limit": "memory.limit_in_bytes"},
}


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[tuple[str, Path]]:
    """(version, directory) candidates for this process' memory cgroup, most specific first."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        parts = PurePosixPath(path).parts[1:]
        if controllers == "":
            found += [("v2", root.joinpath(*parts)), ("v2", root)]
        elif "memory" in controllers.split(","):
            found += [("v1", root.joinpath("memory", *parts)), ("v1", root / "memory")]
    return found


def read(what: str, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float:
    """Bytes of ``what`` ("usage", "peak" or "limit") for this container, NaN when not known (no cgroup
    file, or no limit)."""
    for version, directory in _cgroup_dirs(root, proc_cgroup):
        try:
            text = (directory / FILES[version][what]).read_text().strip()
        except OSError:
            continue
        if text == "max" or (text.isdigit() and int(text) >= UNLIMITED):
            return math.nan
        return float(int(text))
    return math.nan
