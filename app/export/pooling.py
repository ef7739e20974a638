"""sentence-transformers' Pooling modes as traceable torch functions (the math of its padded path).

Each takes the transformer's last_hidden_state [batch, seq, hidden] and the attention mask [batch, seq]
and returns [batch, hidden]. Positions come from the mask (cumsum, argmax), never from Python ints, so
the ONNX graph keeps a dynamic sequence axis; left and right padding give what sentence-transformers gives.
`mean` is the exact expression of the first export (the all-MiniLM-L6-v2 graph stays byte-identical).
"""

from __future__ import annotations

import torch


def mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def mean_sqrt_len_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / torch.sqrt(mask.sum(dim=1).clamp(min=1e-9))


def cls(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first attended token (position 0 under right padding)."""
    return _select(hidden, attention_mask, _first(attention_mask))


def max(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:  # noqa: A001 (the mode's name)
    mask = attention_mask.unsqueeze(-1).expand_as(hidden).to(hidden.dtype)
    return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values


def lasttoken(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last attended token (zeros for a row with none, as sentence-transformers gives)."""
    last = (_positions(attention_mask) * attention_mask).max(dim=1).values
    mask = attention_mask.unsqueeze(-1).expand_as(hidden).to(hidden.dtype)
    return _select(hidden * mask, attention_mask, last)


def weightedmean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Position-weighted mean, weights 1, 2, … from the first attended token."""
    weights = _positions(attention_mask) + 1 - _first(attention_mask).unsqueeze(-1)
    weighted = attention_mask.unsqueeze(-1).to(hidden.dtype) * weights.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weighted).sum(dim=1) / weighted.sum(dim=1).clamp(min=1e-9)


MODES = {f.__name__: f for f in (mean, cls, max, lasttoken, mean_sqrt_len_tokens, weightedmean)}


def _first(attention_mask: torch.Tensor) -> torch.Tensor:
    # int32: ONNX Runtime has no int64 ArgMax kernel.
    return attention_mask.to(torch.int32).argmax(dim=1).to(torch.int64)


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(attention_mask).cumsum(dim=1) - 1


def _select(hidden: torch.Tensor, attention_mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """hidden[row, index[row]]: a one-hot sum (exact: the other terms are 0), which, unlike a gather with an
    expanded index, keeps the hidden width static in the graph's output shape."""
    one_hot = (_positions(attention_mask) == index.unsqueeze(-1)).unsqueeze(-1).to(hidden.dtype)
    return (hidden * one_hot).sum(dim=1)
