// Bit packing of ±1 tensors along their last (channel) axis into 64-bit words.
//
// Encoding (see shared/design/ARCHITECTURE.md): bit 0 = +1, bit 1 = -1, value j of a
// row lives in word j / 64, bit j % 64. A value maps to -1 iff it is < 0 (an ordered
// compare, as _mm512_cmp_ps_mask(x, 0, _CMP_LT_OQ) does), so:
//   +0.0 and -0.0 pack as +1 (sign(0) = +1), NaN (either sign) packs as +1,
//   -inf packs as -1, +inf as +1.
// The tail of the last word is zero (+1) so that two packed rows of the same length give
// dot(a, w) = K - 2 * popcount(a ^ w) with the true K.
//
// pack_rows_f32_scalar / unpack_rows_f32_scalar (bitpack.cpp) are the reference; the
// AVX2 (bitpack_avx2.cpp), AVX-512 (bitpack_avx512.cpp) and NEON (bitpack_neon.cpp)
// variants are bit-exact with it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dispatch.h"

namespace onebit {

constexpr std::int64_t words_for(std::int64_t bits) { return (bits + 63) / 64; }

// One signature per family; x: rows x cols floats (row-major) -> out: rows x
// words_for(cols) words, and back (out: rows x cols floats in {-1, +1}).
using PackRowsFn = void (*)(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out);
using UnpackRowsFn = void (*)(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out);
// The packed sign of a per-column affine and shift of x, without storing it: for rows of
// cols floats at x + r * ldx, z = x * scale[j] + bias[j] (a product then a sum, two
// roundings; skipped when scale is null, bias then ignored), then z - shift[j] (skipped when
// shift is null); bits of z as pack's, into rows of words_for(cols) words at out + r * ldo
// (tail bits 0). The sign of a BatchNorm's output for the next binary layer.
using PackAffineRowsFn = void (*)(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                  const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                                  std::int64_t ldo);

struct BitpackKernels {
  PackRowsFn pack;      // nullptr where the ISA is not compiled for this architecture
  UnpackRowsFn unpack;
  PackAffineRowsFn pack_affine;
};

extern const BitpackKernels kBitpackScalar;  // bitpack.cpp (the reference)
extern const BitpackKernels kBitpackAvx2;    // bitpack_avx2.cpp
extern const BitpackKernels kBitpackAvx512;  // bitpack_avx512.cpp
#if defined(__aarch64__)
// bitpack_neon.cpp, built on AArch64 only (elsewhere parse_isa does not know Isa::neon).
extern const BitpackKernels kBitpackNeon;
#endif

const BitpackKernels& bitpack_kernels(Isa isa);

// The reference implementations.
void pack_rows_f32_scalar(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out);
void unpack_rows_f32_scalar(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out);
// pack_affine's rule for column k of a row: 1 iff ((x[k] * scale[k]) + bias[k]) - shift[k] < 0,
// each step rounded, the affine skipped when scale is null, the shift when shift is null.
inline bool affine_sign_bit(const float* x, const float* scale, const float* bias, const float* shift,
                            std::int64_t k) {
  float z = x[k];
  if (scale != nullptr) {
    const float t = z * scale[k];
    z = t + bias[k];
  }
  if (shift != nullptr) z = z - shift[k];
  return z < 0.0f;
}
void pack_affine_rows_f32_scalar(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                 const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                                 std::int64_t ldo);

// Dispatched, threaded over rows for large inputs (num_threads is a maximum).
void pack_rows_f32(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out,
                   int num_threads, Isa isa);
void unpack_rows_f32(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out,
                     int num_threads, Isa isa);

}  // namespace onebit
