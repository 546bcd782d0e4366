"""The runtime's ``embedding`` op: token ids → rows of a table, laid out for a 1-D convolution.

A text CNN (:func:`onebit.models.text.binary_text_cnn`) takes a sentence as ``L`` token ids
(float32 integers, :meth:`onebit.text.features.TextFeaturizer.sequences`) and looks each up
in a table of ``V`` rows of ``D`` values. The engine keeps a 1-D signal as the image
``(1, L, C)``, channels last, so the op writes ``(1, L, D)``, which a ``conv2d`` node with a
``1 × k`` kernel reads directly (PyTorch's Conv1d over the embedding's ``(D, L)``).

The table is stored in one of two forms (the node's ``table`` field):

- ``"float"``: float32 ``(V, D)``; the output is float32 ``(1, L, D)``: for a first
  convolution with float input (the float twin, or binary weights on float embeddings).
- ``"bits"``: packed signs ``uint64 (V, ceil(D/64))`` (bit 1 = −1, ``sign(0) = +1``); the
  output is packed bits ``(1, L, D)``. The exporter writes this form when every user of the
  embedding binarizes it (its input quantizer is a sign): ``sign(E)[id] = sign(E[id])``, so
  the lookup of pre-packed sign rows is exact, the table is 32× smaller than float32, and
  the XNOR-popcount convolution reads the gathered words with no sign or packing step.

Ids must be integers in ``[0, V)``; anything else is an :class:`~onebit.errors.InputError`
naming the first bad value, never a wrong row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onebit import _core
from onebit.errors import InputError
from onebit.runtime.ops import Layer, NodeReader, Values, words

__all__ = ["MAX_VOCAB", "TABLES", "embedding"]

TABLES = ("float", "bits")
MAX_VOCAB = 2**24  # float32 holds every integer up to 2**24 exactly


def embedding(r: NodeReader, src: str, out: str, shape: tuple[int, ...], bits: bool) -> Layer:
    """Build the lookup of ``src`` (float ids ``(L,)``) in the node's table; output ``(1, L, D)``."""
    if bits or len(shape) != 1:
        raise r.error(f"embedding needs float token ids of shape (L,), got {'bits ' if bits else ''}{shape}")
    vocab, dim = r.int("vocab", 1, MAX_VOCAB), r.int("dim", 1, 2**16)
    form = r.str("table", TABLES)
    if form == "bits":
        table = r.tensor("table", "uint64", (vocab, words(dim)))
        if dim % 64 and bool((table[:, -1] >> np.uint64(dim % 64)).any()):
            raise r.error("table holds bits past its dim in the last word (they must be 0)")
    else:
        table = r.finite("table", (vocab, dim))
    length = shape[0]
    name = r.node.get("name")

    def check(values: Values) -> None:
        x = np.ascontiguousarray(values[src])
        bad = _core.first_bad_id(x, vocab)
        if bad >= 0:
            raise InputError(f"embedding {name!r}: token ids must be integers in [0, {vocab}), "
                             f"got {float(x.reshape(-1)[bad])!r}")

    def run(values: Values, threads: int) -> None:
        check(values)
        x = values[src]
        values[out] = table[x.astype(np.int64)].reshape(len(x), 1, length, table.shape[1])

    def native(plan: Any, ids: dict[str, int], shapes: Any) -> None:
        plan.embedding(ids[src], ids[out], table, form == "bits")

    return Layer("", "embedding", f"lookup, {form} table", shape, (1, length, dim), form == "bits", run=run,
                 native=native, check=check)
