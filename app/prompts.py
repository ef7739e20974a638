"""Prompts (sentence-transformers' ``prompt_name``): a text the model expects before each input.

The model directory's embedding.json names them (``prompts``) and may name one to apply when a
request names none (``default_prompt_name``). The prompt is prepended before tokenization, so it
counts toward the token limit and the usage figures, and it is part of the cache key.
"""

from __future__ import annotations

from app.embedding_meta import EmbeddingMeta
from app.errors import UnknownPrompt


def prompt_text(meta: EmbeddingMeta, model: str, name: str | None) -> str:
    """The text to prepend for ``name`` (the default prompt when None, "" when there is none)."""
    name = meta.default_prompt_name if name is None else name
    if name is None:
        return ""
    if not meta.prompts:
        raise UnknownPrompt(f"prompt_name={name!r}: {model} defines no prompts; omit prompt_name.", param="prompt_name")
    if name not in meta.prompts:
        valid = ", ".join(repr(n) for n in meta.prompts)
        raise UnknownPrompt(
            f"prompt_name={name!r} is not a prompt of {model}; valid names: {valid} "
            "(GET /ready lists them with their text).",
            param="prompt_name",
        )
    return meta.prompts[name]
