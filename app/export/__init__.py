"""The model stage: from a snapshot of the pinned Hugging Face revision to the service's model directory.

`python -m app.export download` fetches the pinned files with huggingface_hub and checks them against
`upstream.lock.json`; `python -m app.export build` exports ONNX (fp32 + int8), checks both against
sentence-transformers and writes `model.lock.json`. Needs the `export` dependency group (torch,
sentence-transformers, onnx); nothing here is imported by the service.
"""

from pathlib import Path

UPSTREAM_LOCK = Path(__file__).with_name("upstream.lock.json")
