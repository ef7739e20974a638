"""Which precision an engine computes in: the policy, apart from any engine so that it is testable alone.

``EMBEDDER_PRECISION``: ``auto`` (the default) is bf16 where the CPU runs bf16 natively (OpenVINO reports
``BF16`` among the CPU's ``OPTIMIZATION_CAPABILITIES``: AVX512-BF16 or AMX), else f32, asked for explicitly
(OpenVINO would otherwise pick bf16 on AMX by itself). An explicit ``bf16`` on a CPU without it is an error
that names the fix, never a silent fallback. ONNX Runtime runs f32 only.
"""

from __future__ import annotations

from collections.abc import Collection

PRECISIONS = ("auto", "f32", "bf16")


class PrecisionError(ValueError):
    """The precision asked for cannot run here."""


def choose(setting: str, capabilities: Collection[str]) -> str:
    """``f32`` or ``bf16`` for ``setting`` on a CPU with these OpenVINO optimization capabilities."""
    native_bf16 = "BF16" in capabilities
    if setting == "auto":
        return "bf16" if native_bf16 else "f32"
    if setting == "bf16" and not native_bf16:
        raise PrecisionError(
            f"EMBEDDER_PRECISION=bf16, but this CPU has no native bf16 (OpenVINO's CPU capabilities: "
            f"{', '.join(sorted(capabilities)) or 'none'}); set EMBEDDER_PRECISION=auto or f32"
        )
    if setting not in PRECISIONS:
        raise PrecisionError(f"EMBEDDER_PRECISION={setting!r}: use one of {', '.join(PRECISIONS)}")
    return setting
