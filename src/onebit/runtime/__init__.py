"""Bit-packed inference. Needs numpy and onebit's C++ core only, never torch.

``load`` fuses a binary conv with the residual add, RPReLU and sign after it (one kernel
pass; :mod:`onebit.runtime.fusion`), with the results of the nodes run one by one;
``load(path, fuse=False)`` keeps every node of the file as a layer.

Determinism: results are byte-identical for any thread count on one ISA. Across ISAs
(``ONEBIT_ISA``) every integer part (popcounts, thresholds, packed bits of binary layers)
is bit-exact; only products on float inputs may round differently, within 1e-5 × max
|output| (logits within 1e-5 × max |logit|; measured 2.1e-7), which can flip the sign bit
of a value within that distance of a threshold.
"""

from onebit.runtime.bitpack import pack_bits, unpack_bits
from onebit.runtime.model import Layer, Model, load

__all__ = ["Layer", "Model", "load", "pack_bits", "unpack_bits"]
