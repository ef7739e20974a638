"""How many CPUs this process may really use: its affinity mask and its cgroup's CPU quota.

``os.cpu_count()`` is the host's cores; a container limited to 2 CPUs on a 32-core node
that sized its thread pools to 32 would be throttled. Kubernetes and ``docker run --cpus``
set the quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) on
the container's cgroup; a quota may also sit on an ancestor, so the whole path is read and
the smallest quota wins. A fractional quota rounds up (1.5 CPUs: two threads share it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class CpuBudget:
    cpus: int  # what to size thread pools by
    affinity: int  # CPUs in the affinity mask
    quota: float | None  # CPUs the cgroup quota allows, None = no quota

    @property
    def source(self) -> str:
        return "cgroup quota" if self.quota is not None and math.ceil(self.quota) < self.affinity else "affinity"


def cpu_budget(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CpuBudget:
    affinity = os.process_cpu_count() or 1
    quota = cgroup_quota(root, proc_cgroup)
    cpus = affinity if quota is None else max(1, min(affinity, math.ceil(quota)))
    return CpuBudget(cpus, affinity, quota)


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The smallest CPU quota on this process's cgroup path, in CPUs; None when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2 (unified)
            quotas += [q for d in _ancestors(root, path) if (q := _v2_quota(d / "cpu.max")) is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1
            base = root / controllers
            if not base.is_dir():
                base = root / "cpu"
            quotas += [q for d in _ancestors(base, path) if (q := _v1_quota(d)) is not None]
    return min(quotas, default=None)


def _ancestors(base: Path, path: str) -> list[Path]:
    """base/path and each parent up to base itself (a container sees its own cgroup as "/")."""
    parts = PurePosixPath(path).parts[1:]
    return [base.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _v2_quota(file: Path) -> float | None:
    try:
        quota, period = file.read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period
