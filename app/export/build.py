"""Build the service's model directory from a checked snapshot of the upstream repo."""

import json
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard
from sentence_transformers import SentenceTransformer

from . import verify
from app.lock import LOCK_NAME, Lock, lock_directory
from .onnx_export import export_fp32
from .quantize import quantize_int8

WEIGHTS = "model.safetensors"  # the ONNX graphs carry the weights; the runtime image does not need them
CARD = "README.md"  # the model card: its metadata names the license
FP32, INT8 = "onnx/model.onnx", "onnx/model_int8.onnx"
THRESHOLDS = {FP32: 0.9999, INT8: 0.99}


def build(snapshot: Path, out: Path, upstream: Lock) -> dict:
    """Export, quantize and verify into out (replaced atomically); returns the verification results."""
    snapshot, out = Path(snapshot), Path(out)
    upstream.verify(snapshot)
    st = SentenceTransformer(str(snapshot), device="cpu")
    reference = st.encode(verify.SENTENCES, normalize_embeddings=True, show_progress_bar=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel in upstream.files:
            if rel != WEIGHTS:
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(snapshot / rel, work / rel)
        export_fp32(st, work / FP32)
        quantize_int8(work / FP32, work / INT8)
        results = {}
        for rel, threshold in THRESHOLDS.items():
            cos = verify.min_cosine(work / rel, work / "tokenizer.json", reference, st.max_seq_length)
            print(f"{rel}: min cosine {cos:.6f} (threshold {threshold})", flush=True)
            verify.check(rel, cos, threshold)
            results[rel] = {"min_cosine": round(cos, 6), "threshold": threshold}
        (work / "reference.json").write_text(
            json.dumps({"sentences": verify.SENTENCES, "embeddings": reference.tolist()}) + "\n"
        )
        lock = lock_directory(work, upstream.repo, upstream.revision)
        lock.write(work / LOCK_NAME, max_seq_length=st.max_seq_length, license=model_license(snapshot),
                   verification=results)
        work.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def model_license(snapshot: Path) -> str:
    """The license the model card's metadata declares (recorded in the lock, for the SBOM and the license
    gate); empty when there is no card or it names none."""
    card = snapshot / CARD
    if not card.is_file():
        return ""
    return str(ModelCard.load(card).data.license or "")
