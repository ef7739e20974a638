"""app.memory: the container's memory usage, peak and limit from cgroup v2 and v1 files."""

import math

from app import memory


def tree(tmp_path, proc: str, files: dict[str, str]):
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "cgroup").write_text(proc)
    return tmp_path / "cg", tmp_path / "cgroup"


def test_v2_container_sees_its_cgroup_at_the_root(tmp_path):
    root, proc = tree(tmp_path, "0::/\n", {"memory.current": "100\n", "memory.peak": "250\n", "memory.max": "939524096\n"})
    assert [memory.read(w, root, proc) for w in ("usage", "peak", "limit")] == [100, 250, 939524096]


def test_v2_no_limit_and_old_kernel_without_peak(tmp_path):
    root, proc = tree(tmp_path, "0::/\n", {"memory.current": "100\n", "memory.max": "max\n"})
    assert math.isnan(memory.read("limit", root, proc)) and math.isnan(memory.read("peak", root, proc))


def test_v1_follows_the_process_path(tmp_path):
    files = {
        "memory/docker/abc/memory.max_usage_in_bytes": "700\n",
        "memory/docker/abc/memory.limit_in_bytes": "939524096\n",
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # the host's: no limit
    }
    root, proc = tree(tmp_path, "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n", files)
    assert memory.read("peak", root, proc) == 700 and memory.read("limit", root, proc) == 939524096


def test_v1_unlimited_and_no_cgroup_are_nan(tmp_path):
    root, proc = tree(tmp_path, "4:memory:/\n", {"memory/memory.limit_in_bytes": "9223372036854771712\n"})
    assert math.isnan(memory.read("limit", root, proc))
    assert math.isnan(memory.read("usage", root, tmp_path / "missing"))
