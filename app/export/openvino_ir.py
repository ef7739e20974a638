"""The OpenVINO graph: the fp32 ONNX export converted to OpenVINO IR by openvino's own converter.

Weights are stored as float16 (half the file) when that keeps the f32 path at the contract; the CPU plugin
decompresses them at load, so compute precision is still the service's choice (f32 or bf16, app.engine).
"""

from pathlib import Path

import openvino as ov

XML = "openvino/openvino_model.xml"


def convert(onnx_model: Path, out_xml: Path, fp16_weights: bool = True) -> Path:
    """Write ``out_xml`` (and its .bin beside it) from the ONNX graph; the inputs and output keep their names."""
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    model = ov.convert_model(str(onnx_model))
    ov.save_model(model, str(out_xml), compress_to_fp16=fp16_weights)
    return out_xml


def bin_path(xml: Path) -> Path:
    return xml.with_suffix(".bin")


def bf16_native() -> bool:
    """Whether this CPU runs bf16 natively (what the service's EMBEDDER_PRECISION=auto asks too)."""
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
