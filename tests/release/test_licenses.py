"""The license gate's rules (release/licenses.py) on small SBOMs: what passes, and what fails naming the fix."""

from __future__ import annotations

import pytest

pytest.importorskip("license_expression", reason="the release group (dagger call sbom-check)")

from release.licenses import problems  # noqa: E402

POLICY = {
    "allowed": {"MIT": "", "Apache-2.0": "", "BSD-3-Clause": ""},
    "exceptions": {"odd": {"declared": "MIT License", "spdx": "MIT", "reason": "says MIT in words"}},
}


def bom(name: str, license_entry: dict | None) -> dict:
    component = {"type": "library", "name": name, "version": "1.0", "purl": f"pkg:pypi/{name}@1.0"}
    if license_entry:
        component["licenses"] = [license_entry]
    return {"components": [component]}


@pytest.mark.parametrize("entry", [
    {"license": {"id": "MIT"}},
    {"expression": "Apache-2.0 OR GPL-3.0-only"},  # one allowed branch is enough
    {"expression": "MIT AND BSD-3-Clause"},
])
def test_allowed(entry):
    assert problems(bom("ok", entry), POLICY) == []


@pytest.mark.parametrize(("entry", "needle"), [
    ({"license": {"id": "GPL-3.0-only"}}, "'GPL-3.0-only' is not allowed"),
    ({"expression": "MIT AND GPL-3.0-only"}, "is not allowed"),  # every AND part must be
    ({"license": {"name": "Some License"}}, "not an SPDX expression; add an exception"),
    (None, "declares no license"),
])
def test_refused_naming_package_and_fix(entry, needle):
    (line,) = problems(bom("pkg", entry), POLICY)
    assert line.startswith("pkg 1.0: ") and needle in line, line


def test_exception_applies_only_to_what_was_reviewed():
    assert problems(bom("odd", {"license": {"name": "MIT License"}}), POLICY) == []
    (line,) = problems(bom("odd", {"license": {"name": "GPL"}}), POLICY)
    assert "reviewed for 'MIT License'" in line


def test_models_are_gated_too():
    model = {"type": "machine-learning-model", "name": "org/m", "version": "abc",
             "licenses": [{"license": {"name": "cc-by-nc-4.0"}}]}
    (line,) = problems({"components": [model]}, POLICY)
    assert line.startswith("org/m abc: ")
