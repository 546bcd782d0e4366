"""Bit-packed inference. Needs numpy and onebit's C++ core only, never torch."""

from onebit.runtime.bitpack import pack_bits, unpack_bits
from onebit.runtime.model import Layer, Model, load

__all__ = ["Layer", "Model", "load", "pack_bits", "unpack_bits"]
