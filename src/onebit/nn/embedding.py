"""A token embedding for text convolutions: float token ids in, ``(N, D, L)`` channels out.

``TokenEmbedding(V, D)`` looks up each of a sentence's ``L`` token ids
(:meth:`onebit.text.features.TextFeaturizer.sequences`: 0 = padding, 1 = unknown) in a
table ``E`` of ``V × D`` and returns the rows as the channels of a 1-D signal, ``(N, D, L)``,
which a (Quant)Conv1d reads as it is. The ids arrive as float32 (what ``onebit.runtime`` and
the exporter's example batches carry) and must be whole numbers in ``[0, V)``.

- ``weight_quantizer`` (e.g. ``"ste_sign"``): the table is binarized in the forward,
  ``E_b = sign(E)`` with a straight-through gradient to the latent ``E`` (a binarized
  embedding); None keeps it float. Row 0 (padding) stays zero in the latent table.
- ``token_dropout`` p: while training, each token is replaced by padding with probability
  p (word dropout, Iyyer et al. 2015, "Deep Unordered Composition Rivals Syntactic Methods
  for Text Classification"); identity in eval mode.

The exporter writes it as one ``embedding`` node (:mod:`onebit.runtime.embedding`): a table
of packed signs when every user binarizes its output, else a float table.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from onebit.errors import ConfigError, InputError
from onebit.nn.layers import QuantizerSpec
from onebit.nn.quantizers import get_quantizer

__all__ = ["TokenEmbedding"]

PAD_ID = 0


class TokenEmbedding(nn.Module):
    """Token ids ``(N, L)`` (float or integer) → embeddings ``(N, D, L)`` for a 1-D convolution."""

    def __init__(self, num_embeddings: int, dim: int, *, weight_quantizer: QuantizerSpec = None,
                 token_dropout: float = 0.0, init_std: float = 0.5) -> None:
        super().__init__()
        for name, value, low in (("num_embeddings", num_embeddings, 2), ("dim", dim, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 2**24:
                raise ConfigError(f"{name} must be an integer in [{low}, {2**24}], got {value!r}")
        if isinstance(token_dropout, bool) or not isinstance(token_dropout, (int, float)) or not 0 <= token_dropout < 1:
            raise ConfigError(f"token_dropout must be in [0, 1), got {token_dropout!r}")
        self.num_embeddings, self.dim, self.token_dropout = num_embeddings, dim, float(token_dropout)
        # N(0, 0.5²): most entries inside the straight-through window |x| ≤ 1 of a sign that follows.
        self.weight = nn.Parameter(torch.randn(num_embeddings, dim) * init_std)
        with torch.no_grad():
            self.weight[PAD_ID].zero_()
        self.weight_quantizer = get_quantizer(weight_quantizer)

    def table(self) -> Tensor:
        """The effective table: ``E``, or ``q(E)`` with the weight quantizer (padding row kept at 0 latent)."""
        return self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise InputError(f"TokenEmbedding expects token ids of shape (N, L), got {tuple(ids.shape)}")
        index = ids.long()
        if index.numel() and (bool((index != ids).any()) or int(index.min()) < 0
                              or int(index.max()) >= self.num_embeddings):
            raise InputError(f"token ids must be whole numbers in [0, {self.num_embeddings}); got values from "
                             f"{float(ids.min())} to {float(ids.max())}")
        if self.training and self.token_dropout > 0:
            keep = torch.rand(index.shape, device=index.device) >= self.token_dropout
            index = torch.where(keep, index, torch.full_like(index, PAD_ID))
        out = nn.functional.embedding(index, self.table(), padding_idx=PAD_ID)  # row 0 gets no gradient
        return out.transpose(1, 2)

    def extra_repr(self) -> str:
        q = "" if self.weight_quantizer is None else f", weight_quantizer={self.weight_quantizer.name}"
        p = f", token_dropout={self.token_dropout:g}" if self.token_dropout else ""
        return f"{self.num_embeddings}, {self.dim}{q}{p}"
