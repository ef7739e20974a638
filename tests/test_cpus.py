"""CPU budget from affinity and the cgroup quota, read from files laid out as cgroupfs lays them out."""

from __future__ import annotations

import os

import pytest

from app.cpus import cgroup_quota, cpu_budget


def cgroupfs(tmp_path, proc: str, files: dict[str, str]):
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    root.mkdir(exist_ok=True)
    (tmp_path / "proc_cgroup").write_text(proc)
    return root, tmp_path / "proc_cgroup"


@pytest.mark.parametrize(
    ("proc", "files", "quota"),
    [
        ("0::/\n", {"cpu.max": "200000 100000\n"}, 2.0),  # v2, container with its own namespace
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # v2, no quota
        ("0::/kubepods/pod1/c1\n", {"kubepods/pod1/c1/cpu.max": "max 100000", "kubepods/pod1/cpu.max": "150000 100000"}, 1.5),
        ("0::/a/b\n", {"a/b/cpu.max": "50000 100000", "a/cpu.max": "300000 100000"}, 0.5),  # smallest wins
        ("4:cpu,cpuacct:/docker/abc\n0::/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "100000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 1.0),  # v1, mounted at its root
        ("1:cpu:/\n2:cpuacct:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1, unlimited
        ("0::/\n", {}, None),  # nothing readable
    ],
)
def test_quota_from_cgroupfs(tmp_path, proc, files, quota):
    root, proc_file = cgroupfs(tmp_path, proc, files)
    assert cgroup_quota(root, proc_file) == quota


def test_budget_is_the_quota_rounded_up_within_affinity(tmp_path):
    affinity = os.process_cpu_count()
    root, proc_file = cgroupfs(tmp_path, "0::/\n", {"cpu.max": "50000 100000"})
    budget = cpu_budget(root, proc_file)
    assert (budget.cpus, budget.quota, budget.affinity) == (1, 0.5, affinity)
    assert budget.source == ("cgroup quota" if affinity > 1 else "affinity")
    root, proc_file = cgroupfs(tmp_path / "big", "0::/\n", {"cpu.max": f"{(affinity + 8) * 100000} 100000"})
    assert cpu_budget(root, proc_file).cpus == affinity  # a quota above the mask changes nothing


def test_this_process_budget_is_sane():
    budget = cpu_budget()
    assert 1 <= budget.cpus <= budget.affinity
