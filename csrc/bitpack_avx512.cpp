// AVX-512 bit packing: 16 floats -> 16 bits per _mm512_cmp_ps_mask(x, 0, _CMP_LT_OQ).
// The ordered less-than compare gives exactly the reference's `x < 0.0f`: false for
// +0.0, -0.0 and NaN (so they pack as +1), true for negative numbers and -inf. The tail
// of a row is read with masked loads (no read past the row), masked-off lanes are 0.0,
// which packs as 0: the tail bits stay 0.
#include <cstdint>

#include "bitpack.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw")))

namespace onebit {
namespace {

ONEBIT_TARGET_AVX512 inline std::uint64_t pack64(const float* p, std::int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  if (n >= 64) {
    const std::uint64_t m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p), zero, _CMP_LT_OQ);
    const std::uint64_t m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 16), zero, _CMP_LT_OQ);
    const std::uint64_t m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 32), zero, _CMP_LT_OQ);
    const std::uint64_t m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(p + 48), zero, _CMP_LT_OQ);
    return m0 | (m1 << 16) | (m2 << 32) | (m3 << 48);
  }
  std::uint64_t word = 0;
  for (int part = 0; part < 4; ++part) {
    const std::int64_t left = n - 16 * part;
    if (left <= 0) break;
    const __mmask16 valid = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(valid, p + 16 * part);
    word |= static_cast<std::uint64_t>(_mm512_mask_cmp_ps_mask(valid, v, zero, _CMP_LT_OQ)) << (16 * part);
  }
  return word;
}

ONEBIT_TARGET_AVX512 void pack_avx512(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out) {
  const std::int64_t words = words_for(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    std::uint64_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) dst[w] = pack64(row + 64 * w, cols - 64 * w);
  }
}

ONEBIT_TARGET_AVX512 void unpack_avx512(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols,
                                        float* out) {
  const std::int64_t words = words_for(cols);
  const __m512 plus = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t* src = packed + r * words;
    float* row = out + r * cols;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::uint64_t word = src[w];
      for (int part = 0; part < 4; ++part) {
        const std::int64_t left = cols - 64 * w - 16 * part;
        if (left <= 0) break;
        const __mmask16 bits = static_cast<__mmask16>(word >> (16 * part));
        const __m512 v = _mm512_mask_blend_ps(bits, plus, minus);
        float* p = row + 64 * w + 16 * part;
        if (left >= 16) {
          _mm512_storeu_ps(p, v);
        } else {
          _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << left) - 1u), v);
        }
      }
    }
  }
}

// 16 columns from j0 (valid lanes only) through the affine and shift, as 16 sign bits.
template <bool kAffine, bool kShift>
ONEBIT_TARGET_AVX512 inline std::uint64_t affine_bits(const float* row, const float* scale, const float* bias,
                                                      const float* shift, std::int64_t j0, __mmask16 valid) {
  __m512 z = _mm512_maskz_loadu_ps(valid, row + j0);
  if (kAffine) {
    __m512 t = _mm512_mul_ps(z, _mm512_maskz_loadu_ps(valid, scale + j0));
    __asm__("" : "+v"(t));  // two roundings: no contraction into an FMA
    z = _mm512_add_ps(t, _mm512_maskz_loadu_ps(valid, bias + j0));
  }
  if (kShift) z = _mm512_sub_ps(z, _mm512_maskz_loadu_ps(valid, shift + j0));
  return _mm512_mask_cmp_ps_mask(valid, z, _mm512_setzero_ps(), _CMP_LT_OQ);
}

// One word's columns (cols <= 64: a DenseNet feature of 64 channels, QuickNet's 32): the
// per-column vectors loaded into registers once for all rows.
template <bool kAffine, bool kShift>
ONEBIT_TARGET_AVX512 void pack_affine_word(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                           const float* scale, const float* bias, const float* shift,
                                           std::uint64_t* out, std::int64_t ldo) {
  __mmask16 valid[4];
  __m512 sc[4], bi[4], sh[4];
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (int part = 0; part < 4; ++part) {
    const std::int64_t left = cols - 16 * part;
    valid[part] = left >= 16 ? static_cast<__mmask16>(0xffff)
                  : left <= 0 ? static_cast<__mmask16>(0)
                              : static_cast<__mmask16>((1u << left) - 1u);
    sc[part] = kAffine ? _mm512_maskz_loadu_ps(valid[part], scale + 16 * part) : zero;
    bi[part] = kAffine ? _mm512_maskz_loadu_ps(valid[part], bias + 16 * part) : zero;
    sh[part] = kShift ? _mm512_maskz_loadu_ps(valid[part], shift + 16 * part) : zero;
  }
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    std::uint64_t word = 0;
#pragma GCC unroll 4
    for (int part = 0; part < 4; ++part) {
      __m512 z = _mm512_maskz_loadu_ps(valid[part], row + 16 * part);
      if (kAffine) {
        __m512 t = _mm512_mul_ps(z, sc[part]);
        __asm__("" : "+v"(t));  // two roundings: no contraction into an FMA
        z = _mm512_add_ps(t, bi[part]);
      }
      if (kShift) z = _mm512_sub_ps(z, sh[part]);
      word |= static_cast<std::uint64_t>(_mm512_mask_cmp_ps_mask(valid[part], z, zero, _CMP_LT_OQ)) << (16 * part);
    }
    out[r * ldo] = word;
  }
}

template <bool kAffine, bool kShift>
ONEBIT_TARGET_AVX512 void pack_affine_t(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                        const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                                        std::int64_t ldo) {
  if (cols <= 64) return pack_affine_word<kAffine, kShift>(x, rows, cols, ldx, scale, bias, shift, out, ldo);
  const std::int64_t words = words_for(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    std::uint64_t* dst = out + r * ldo;
    for (std::int64_t w = 0; w < words; ++w) {
      std::uint64_t word = 0;
#pragma GCC unroll 4
      for (int part = 0; part < 4; ++part) {
        const std::int64_t j0 = 64 * w + 16 * part, left = cols - j0;
        if (left <= 0) break;
        const __mmask16 valid = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
        word |= affine_bits<kAffine, kShift>(row, scale, bias, shift, j0, valid) << (16 * part);
      }
      dst[w] = word;
    }
  }
}

ONEBIT_TARGET_AVX512 void pack_affine_avx512(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                             const float* scale, const float* bias, const float* shift,
                                             std::uint64_t* out, std::int64_t ldo) {
  if (scale != nullptr) {
    if (shift != nullptr) return pack_affine_t<true, true>(x, rows, cols, ldx, scale, bias, shift, out, ldo);
    return pack_affine_t<true, false>(x, rows, cols, ldx, scale, bias, shift, out, ldo);
  }
  if (shift != nullptr) return pack_affine_t<false, true>(x, rows, cols, ldx, scale, bias, shift, out, ldo);
  return pack_affine_t<false, false>(x, rows, cols, ldx, scale, bias, shift, out, ldo);
}

}  // namespace

const BitpackKernels kBitpackAvx512 = {pack_avx512, unpack_avx512, pack_affine_avx512};

}  // namespace onebit

#else

namespace onebit {
const BitpackKernels kBitpackAvx512 = {nullptr, nullptr, nullptr};
}  // namespace onebit

#endif
