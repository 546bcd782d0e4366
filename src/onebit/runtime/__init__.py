"""Bit-packed inference. Needs numpy and onebit's C++ core only, never torch."""

from onebit.runtime.bitpack import pack_bits, unpack_bits

__all__ = ["pack_bits", "unpack_bits"]
