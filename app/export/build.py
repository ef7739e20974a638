"""Build the service's model directory from a checked snapshot of the upstream repo."""

import json
import shutil
import tempfile
from pathlib import Path

from sentence_transformers import SentenceTransformer

from app.embedding_meta import FORMAT, EmbeddingMeta
from app.lock import LOCK_NAME, Lock, lock_directory

from . import locking, openvino_ir, st_config, startcheck, verify
from .onnx_export import export_fp32
from .st_config import StConfig, Unsupported

# The ONNX graphs carry the weights; the runtime image does not need them (nor a Dense module's).
WEIGHTS = (".safetensors", ".safetensors.index.json", ".bin", ".pt", ".pth")
TOKENIZER = "tokenizer.json"
FP32, IR = "onnx/model.onnx", openvino_ir.XML
#: Min cosine to sentence-transformers that each graph must meet at f32 (the service's contract).
THRESHOLD = 0.9999


def build(snapshot: Path, out: Path, upstream: Lock) -> dict:
    """Export ONNX and OpenVINO IR and verify both into out (replaced atomically); returns the verification
    results."""
    snapshot, out = Path(snapshot), Path(out)
    upstream.verify(snapshot)
    config = st_config.read(snapshot)  # refuses an unsupported pipeline before torch loads the weights
    st = SentenceTransformer(str(snapshot), device="cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel in upstream.files:
            if not rel.endswith(WEIGHTS):
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(snapshot / rel, work / rel)
        if config.lowercase or not (work / TOKENIZER).is_file():
            # The service reads tokenizer.json only: write the one sentence-transformers tokenizes with
            # (converted from the slow tokenizer's files, or with do_lower_case's Lowercase added).
            st.tokenizer.backend_tokenizer.save(str(work / TOKENIZER))
        inputs, width = export_fp32(st, config, work / FP32)
        meta = embedding_meta(st, config, inputs, width)
        meta.write(work)
        prompt = verify.default_prompt(meta)
        reference = st.encode(verify.SENTENCES, prompt=prompt, normalize_embeddings=True, show_progress_bar=False)
        startcheck.write(work, [prompt + t for t in startcheck.TEXTS], st.encode(
            startcheck.TEXTS, prompt=prompt, normalize_embeddings=True, show_progress_bar=False))
        heldout = st.encode(verify.HELDOUT, prompt=prompt, normalize_embeddings=True, show_progress_bar=False)
        results = {FP32: verified(work, FP32, meta, reference, heldout),
                   IR: openvino_graph(work, meta, reference, heldout)}
        (work / "reference.json").write_text(json.dumps({
            "sentences": verify.SENTENCES, "embeddings": reference.tolist(),
            "heldout": {"texts": verify.HELDOUT, "embeddings": heldout.tolist()},
        }) + "\n")
        lock = lock_directory(work, upstream.repo, upstream.revision)
        lock.write(work / LOCK_NAME, max_seq_length=st.max_seq_length, license=locking.model_license(snapshot),
                   verification=results)
        work.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def verified(work: Path, rel: str, meta: EmbeddingMeta, reference, heldout, precision: str = "f32") -> dict:
    """The graph's min cosine to sentence-transformers on the check sentences and on the held-out texts;
    VerificationFailed below its threshold."""
    run = verify.runner(work / rel, work / TOKENIZER, meta, precision)  # loaded once for both text sets
    cos = verify.runner_min_cosine(run, meta, reference)
    held = verify.runner_min_cosine(run, meta, heldout, verify.HELDOUT)
    print(f"{rel} ({precision}): min cosine {cos:.6f}, held-out {held:.6f} (threshold {THRESHOLD})", flush=True)
    verify.check(f"{rel} ({precision})", min(cos, held), THRESHOLD)
    return {"min_cosine": round(cos, 6), "heldout_min_cosine": round(held, 6), "threshold": THRESHOLD}


def openvino_graph(work: Path, meta: EmbeddingMeta, reference, heldout) -> dict:
    """The OpenVINO IR of the fp32 graph, float16 weights if f32 compute on them still meets the contract
    (else float32 weights), verified at f32 and, where this CPU runs bf16 natively, at bf16. bf16 below the
    contract does not fail the build: the service measures it again at start and falls back to f32."""
    xml = openvino_ir.convert(work / FP32, work / IR, fp16_weights=True)
    try:
        result = verified(work, IR, meta, reference, heldout) | {"weights": "f16"}
    except verify.VerificationFailed as e:
        print(f"{e}: keeping float32 weights", flush=True)
        openvino_ir.convert(work / FP32, xml, fp16_weights=False)
        result = verified(work, IR, meta, reference, heldout) | {"weights": "f32"}
    if openvino_ir.bf16_native():
        try:
            result["bf16"] = verified(work, IR, meta, reference, heldout, "bf16")
        except verify.VerificationFailed as e:
            print(f"warning: {e}; EMBEDDER_PRECISION=auto falls back to f32 on such CPUs", flush=True)
    return result


def embedding_meta(st: SentenceTransformer, config: StConfig, inputs: tuple[str, ...], width: int) -> EmbeddingMeta:
    """The embedding.json of the exported graph; Unsupported when the model cannot be served as exported."""
    pad = st.tokenizer.pad_token_id
    if pad is None:
        raise Unsupported("the tokenizer defines no pad token: set pad_token in tokenizer_config.json")
    if config.max_seq_length is not None and config.max_seq_length != st.max_seq_length:
        raise Unsupported(f"sentence_bert_config.json max_seq_length {config.max_seq_length}, "
                         f"the loaded tokenizer truncates at {st.max_seq_length}")
    if width != st.get_embedding_dimension():
        raise Unsupported(f"the graph outputs {width} dimensions, the model says {st.get_embedding_dimension()}")
    return EmbeddingMeta(
        format=FORMAT, dimensions=width, pooling=config.pooling, dense_layers=len(config.dense),
        normalize=config.normalize, max_seq_length=int(st.max_seq_length), inputs=inputs,
        prompts=config.prompts, default_prompt_name=config.default_prompt_name, pad_token_id=int(pad),
    )
