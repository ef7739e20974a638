"""Tiny random sentence-transformers models, built on this machine (no hub): a WordPiece tokenizer over a few
sentences and a 2-layer, 32-wide transformer, saved as sentence-transformers saves a model."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel, PreTrainedTokenizerFast, RobertaConfig, RobertaModel

from app.export.verify import SENTENCES

CORPUS = SENTENCES + ["query: what is an embedding?", "passage: an embedding is a vector of numbers."]
HIDDEN = 32
SIZES = dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@dataclass(frozen=True)
class Spec:
    """One tiny model: its architecture, pooling mode, Dense layers (out width, activation), the rest."""

    arch: str = "bert"  # bert | roberta (no token_type_ids, pad id 1) | mpnet (forward takes no token_type_ids)
    pooling: str = "mean"
    dense: tuple[tuple[int, torch.nn.Module | None], ...] = ()
    normalize: bool = True
    max_seq_length: int | None = 64
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    include_prompt: bool = True
    init_std: float = 0.02  # the weights' initializer_range: larger makes attention and MLP outweigh the residual


def tokenizer(arch: str) -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer over CORPUS's words and characters (the same ids on every run): BERT's specials
    ([PAD] = 0) with token types, or RoBERTa's (<s>, <pad> = 1, </s>) without."""
    roberta = arch == "roberta"
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"] if roberta else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    bos, pad, eos, unk, mask = (specials[i] for i in ((0, 1, 2, 3, 4) if roberta else (2, 0, 3, 1, 4)))
    normalizer, pre = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = {w for text in CORPUS for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text))}
    chars = {c for w in words for c in w}
    vocab = specials + sorted(words | chars) + sorted(f"##{c}" for c in chars)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token=unk))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre, decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, vocab.index(bos)), (eos, vocab.index(eos))],
    )
    names = ["input_ids", "attention_mask"] if roberta else ["input_ids", "token_type_ids", "attention_mask"]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos, pad_token=pad,
        unk_token=unk, mask_token=mask, model_input_names=names,
    )


def transformer(arch: str, vocab: int, pad: int, init_std: float = 0.02) -> torch.nn.Module:
    if arch == "bert":
        return BertModel(BertConfig(vocab_size=vocab, max_position_embeddings=128, pad_token_id=pad, initializer_range=init_std, **SIZES))
    if arch == "roberta":  # positions start after the padding index, as RoBERTa's do
        return RobertaModel(RobertaConfig(vocab_size=vocab, max_position_embeddings=130, pad_token_id=pad, initializer_range=init_std, **SIZES))
    if arch == "mpnet":
        return MPNetModel(MPNetConfig(vocab_size=vocab, max_position_embeddings=130, pad_token_id=pad, initializer_range=init_std, **SIZES))
    raise ValueError(arch)


def save(spec: Spec, path: Path, seed: int = 0) -> Path:
    """Build the model of spec with random weights (seeded) and save it to path as sentence-transformers does."""
    torch.manual_seed(seed)
    tok = tokenizer(spec.arch)
    raw = path.parent / f"{path.name}.hf"
    model = transformer(spec.arch, len(tok), tok.pad_token_id, spec.init_std)
    model.save_pretrained(raw)
    tok.save_pretrained(raw)
    modules: list[torch.nn.Module] = [
        Transformer(str(raw), max_seq_length=spec.max_seq_length),
        Pooling(HIDDEN, pooling_mode=spec.pooling, include_prompt=spec.include_prompt),
    ]
    width = HIDDEN
    for out, activation in spec.dense:
        modules.append(Dense(width, out, activation_function=activation))
        width = out
    if spec.normalize:
        modules.append(Normalize())
    st = SentenceTransformer(
        modules=modules, device="cpu", prompts=spec.prompts or None, default_prompt_name=spec.default_prompt_name
    )
    st.save(str(path))
    return path


#: The tiny model `dagger call any-model-check` builds into an image and serves: no token_type_ids, CLS pooling,
#: a Dense layer, no Normalize (the service returns it unnormalized by default), and prompts.
SERVED = Spec(arch="roberta", pooling="cls", dense=((24, torch.nn.Tanh()),), normalize=False,
              prompts={"query": "query: ", "passage": "passage: "})

if __name__ == "__main__":  # python tests/export/tiny_models.py OUT: SERVED saved at OUT
    save(SERVED, Path(sys.argv[1]))
