"""app.export.pooling against sentence-transformers' Pooling, in torch and as an ONNX graph, for right and
left padding and a sequence length other than the traced one."""

from __future__ import annotations

import pytest

EXPORT = "uv sync --group export"
pytest.importorskip("torch", reason=f"the pooling functions are torch ({EXPORT})")
pytest.importorskip("sentence_transformers", reason=f"the reference is sentence-transformers' Pooling ({EXPORT})")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Pooling  # noqa: E402

from app.export import pooling  # noqa: E402

LENGTHS = [7, 4, 1, 0]  # the last row attends to nothing


def batch(seq: int, left: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    hidden = torch.randn(len(LENGTHS), seq, 8)
    mask = torch.zeros(len(LENGTHS), seq, dtype=torch.int64)
    for row, n in enumerate(LENGTHS):
        if n:
            mask[row, slice(seq - n, None) if left else slice(0, n)] = 1
    return hidden, mask


def reference(mode: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    features = {"token_embeddings": hidden, "attention_mask": mask}
    return Pooling(hidden.shape[-1], pooling_mode=mode)(features)["sentence_embedding"]


@pytest.mark.parametrize("left", [False, True], ids=["right-padded", "left-padded"])
@pytest.mark.parametrize("mode", list(pooling.MODES))
def test_matches_sentence_transformers(mode, left):
    hidden, mask = batch(9, left)
    want = reference(mode, hidden, mask)
    got = pooling.MODES[mode](hidden, mask)
    rows = slice(None) if mode != "max" else slice(0, 3)  # max of nothing is -inf on both sides
    torch.testing.assert_close(got[rows], want[rows], rtol=0, atol=1e-6)


class Pool(torch.nn.Module):
    def __init__(self, mode: str):
        super().__init__()
        self.pool = pooling.MODES[mode]

    def forward(self, hidden, attention_mask):
        return self.pool(hidden, attention_mask)


@pytest.mark.parametrize("mode", list(pooling.MODES))
def test_onnx_graph_matches_with_a_dynamic_sequence_axis(mode, tmp_path):
    path = tmp_path / f"{mode}.onnx"
    torch.onnx.export(
        Pool(mode), batch(5, False), str(path), input_names=["hidden", "attention_mask"], output_names=["out"],
        dynamic_axes={"hidden": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}}, opset_version=17, dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for left in (False, True):
        hidden, mask = batch(11, left, seed=1)
        (got,) = session.run(None, {"hidden": hidden.numpy(), "attention_mask": mask.numpy()})
        want = reference(mode, hidden, mask).numpy()
        rows = slice(None) if mode != "max" else slice(0, 3)
        np.testing.assert_allclose(got[rows], want[rows], rtol=0, atol=1e-5)
