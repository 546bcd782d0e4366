// AVX2 bit packing: 8 floats -> 8 bits per movemask of _mm256_cmp_ps(x, 0, _CMP_LT_OQ).
// The ordered less-than compare is the reference's `x < 0.0f` (not the sign bit: -0.0 and
// NaNs with the sign bit set pack as +1). The row tail (< 8 floats) uses scalar compares.
#include <cstdint>

#include "bitpack.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX2 __attribute__((target("avx2")))

namespace onebit {
namespace {

ONEBIT_TARGET_AVX2 void pack_avx2(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out) {
  const std::int64_t words = words_for(cols);
  const __m256 zero = _mm256_setzero_ps();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    std::uint64_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      const float* p = row + 64 * w;
      const std::int64_t n = cols - 64 * w < 64 ? cols - 64 * w : 64;
      std::uint64_t word = 0;
      std::int64_t j = 0;
      for (; j + 8 <= n; j += 8) {
        const int bits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + j), zero, _CMP_LT_OQ));
        word |= static_cast<std::uint64_t>(static_cast<unsigned>(bits)) << j;
      }
      for (; j < n; ++j) word |= static_cast<std::uint64_t>(p[j] < 0.0f) << j;
      dst[w] = word;
    }
  }
}

ONEBIT_TARGET_AVX2 void unpack_avx2(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols,
                                    float* out) {
  const std::int64_t words = words_for(cols);
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 plus = _mm256_set1_ps(1.0f), minus = _mm256_set1_ps(-1.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t* src = packed + r * words;
    float* row = out + r * cols;
    std::int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const int byte = static_cast<int>((src[j / 64] >> (j % 64)) & 0xffu);
      const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), lane_bit), lane_bit);
      _mm256_storeu_ps(row + j, _mm256_blendv_ps(plus, minus, _mm256_castsi256_ps(set)));
    }
    for (; j < cols; ++j) row[j] = ((src[j / 64] >> (j % 64)) & 1u) ? -1.0f : 1.0f;
  }
}

// Full groups of 8 columns in vectors, the row's tail (< 8) with the reference's scalar steps.
ONEBIT_TARGET_AVX2 void pack_affine_avx2(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                         const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                                         std::int64_t ldo) {
  const std::int64_t words = words_for(cols);
  const __m256 zero = _mm256_setzero_ps();
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    std::uint64_t* dst = out + r * ldo;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t b = 64 * w, n = cols - b < 64 ? cols - b : 64;
      std::uint64_t word = 0;
      std::int64_t j = 0;
      for (; j + 8 <= n; j += 8) {
        __m256 z = _mm256_loadu_ps(row + b + j);
        if (scale != nullptr) {
          __m256 t = _mm256_mul_ps(z, _mm256_loadu_ps(scale + b + j));
          __asm__("" : "+x"(t));  // two roundings: no contraction into an FMA
          z = _mm256_add_ps(t, _mm256_loadu_ps(bias + b + j));
        }
        if (shift != nullptr) z = _mm256_sub_ps(z, _mm256_loadu_ps(shift + b + j));
        word |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(z, zero, _CMP_LT_OQ))))
                << j;
      }
      for (; j < n; ++j) word |= static_cast<std::uint64_t>(affine_sign_bit(row, scale, bias, shift, b + j)) << j;
      dst[w] = word;
    }
  }
}

}  // namespace

const BitpackKernels kBitpackAvx2 = {pack_avx2, unpack_avx2, pack_affine_avx2};

}  // namespace onebit

#else

namespace onebit {
const BitpackKernels kBitpackAvx2 = {nullptr, nullptr, nullptr};
}  // namespace onebit

#endif
