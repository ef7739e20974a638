"""embedder: sentence embeddings on OpenVINO or ONNX Runtime, from an exported model directory (app.embedding_meta).

Kept import-light on purpose: `app.export` (the model stage, with torch) and the service share this package.

No OpenVINO usage telemetry, from any process of this package: ``import openvino`` imports OpenVINO's converter,
which, where the openvino-telemetry package is installed (a dependency of the openvino wheel; the image does not
ship it, ci/src/embedder/runtime.py), sends an event from a forked process. A service must not phone home, and a
fork while other threads run can leave the child stuck on a lock, and the service hanging at exit waiting for it
(seen here in the development environment). Blocking the import makes OpenVINO use its own stub, as in the image.
"""

import sys

sys.modules.setdefault("openvino_telemetry", None)
