"""The CI templates (.github/workflows/ci.yml, .gitlab-ci.yml): valid against their published schemas (the
check-jsonschema package's vendored copies, offline), on dagger.json's Dagger version, running the commands
docs/ci.md documents. They cannot run on this machine (no GitHub, no GitLab); this is what can be proven here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GITHUB, GITLAB = ROOT / ".github/workflows/ci.yml", ROOT / ".gitlab-ci.yml"
ENGINE = json.loads((ROOT / "dagger.json").read_text())["engineVersion"].removeprefix("v")


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_valid_against_the_published_schema(path, schema):
    run = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def github_steps() -> list[dict]:
    jobs = yaml.safe_load(GITHUB.read_text())["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_github_runs_the_documented_commands_on_the_pinned_dagger():
    dagger = [s for s in github_steps() if s.get("uses", "").startswith("dagger/dagger-for-github@")]
    assert dagger and all(s["with"]["version"].removeprefix("v") == ENGINE for s in dagger)
    commands = {f"dagger {s['with']['verb']} {s['with']['args']}".split(" --")[0] for s in dagger}
    assert {"dagger call test", "dagger call publish", "dagger call sbom export"} <= commands, commands
    documented = (ROOT / "docs" / "ci.md").read_text()
    assert all(command.split(" export")[0] in documented for command in commands)


def test_github_actions_are_pinned_by_commit():
    for step in github_steps():
        if "uses" in step:
            assert re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_publish_only_on_tags_with_credentials_from_secrets():
    workflow = yaml.safe_load(GITHUB.read_text())
    publish = workflow["jobs"]["publish"]
    assert publish["if"].startswith("startsWith(github.ref, 'refs/tags/")
    (step,) = [s for s in publish["steps"] if "publish" in s.get("with", {}).get("args", "")]
    assert step["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    assert "--password env://REGISTRY_PASSWORD" in step["with"]["args"]


def test_gitlab_runs_the_documented_commands_on_the_pinned_dagger_in_docker_in_docker():
    ci = yaml.safe_load(GITLAB.read_text())
    assert ci["variables"]["DAGGER_VERSION"].removeprefix("v") == ENGINE
    assert any(str(s).startswith("docker:") and "dind" in str(s) for s in ci["default"]["services"])
    assert ci["test"]["script"] == ["dagger call test"]
    publish = ci["publish"]
    assert publish["rules"] == [{"if": "$CI_COMMIT_TAG =~ /^v/"}]
    assert any(line.startswith("dagger call publish") and "env://REGISTRY_PASSWORD" in line for line in publish["script"])
    assert "sbom.cdx.json" in publish["artifacts"]["paths"]
