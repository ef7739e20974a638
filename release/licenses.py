"""The license gate: every Python distribution and the model in an SBOM must carry an allowed license.

Allowed licenses and the reviewed exceptions live in release/licenses.toml. ``python -m release.licenses
SBOM.json`` prints one line per problem, naming the package, its license and the fix, and exits 1 if any.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

from license_expression import ExpressionError, LicenseSymbol, get_spdx_licensing

POLICY = Path(__file__).with_name("licenses.toml")
SPDX = get_spdx_licensing()


def declared(component: dict) -> str:
    """The component's license as one string: its expression, or its licenses' ids or names joined by OR."""
    entries = component.get("licenses") or []
    if len(entries) == 1 and "expression" in entries[0]:
        return entries[0]["expression"]
    return " OR ".join(e["license"].get("id") or e["license"].get("name", "") for e in entries if "license" in e)


def allowed(expression: str, ids: set[str]) -> bool:
    """Whether an SPDX expression is satisfied by the allowed ids: AND needs every part, OR one of them."""
    node = SPDX.parse(expression, validate=True, strict=True)
    return _satisfied(node, ids)


def _satisfied(node, ids: set[str]) -> bool:
    if isinstance(node, LicenseSymbol):
        return node.key in ids
    parts = [_satisfied(arg, ids) for arg in node.args]
    return all(parts) if node.operator.strip().upper() == "AND" else any(parts)


def gated(bom: dict) -> list[dict]:
    """The components the gate applies to: Python distributions and models."""
    return [
        c for c in bom["components"]
        if c.get("purl", "").startswith("pkg:pypi/") or c["type"] == "machine-learning-model"
    ]


def problems(bom: dict, policy: dict | None = None) -> list[str]:
    policy = policy or tomllib.loads(POLICY.read_text())
    ids, exceptions = set(policy["allowed"]), policy.get("exceptions", {})
    found = []
    for c in gated(bom):
        name, license_text = c["name"], declared(c)
        where = f"{name} {c.get('version', '')}".strip()
        exception = exceptions.get(name)
        if exception:
            if exception["declared"] != license_text:
                found.append(f"{where}: declares {license_text!r}, but the exception in {POLICY.name} was reviewed "
                             f"for {exception['declared']!r}; review it again and update it")
                continue
            license_text = exception["spdx"]
        if not license_text:
            found.append(f"{where}: declares no license; find it and add an exception to {POLICY.name}")
            continue
        try:
            ok = allowed(license_text, ids)
        except ExpressionError:
            found.append(f"{where}: license {license_text!r} is not an SPDX expression; add an exception to "
                         f"{POLICY.name} with its SPDX id and a reason")
            continue
        if not ok:
            found.append(f"{where}: license {license_text!r} is not allowed ({POLICY.name} [allowed]); remove the "
                         "dependency, or allow the license there with a reason")
    return found


def main(argv: list[str] | None = None) -> int:
    (path,) = argv if argv is not None else sys.argv[1:]
    found = problems(json.loads(Path(path).read_text()))
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
