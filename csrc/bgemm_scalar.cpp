// Scalar bgemm: the reference implementation, which is also the specification (see
// bgemm.h). Plain loops and __builtin_popcountll, portable to any architecture; every
// SIMD variant must be bit-exact with these functions.
#include <cstdint>

#include "bgemm.h"

namespace onebit {

void bgemm_reference(const std::uint64_t* a, std::int64_t m, const std::uint64_t* w, std::int64_t n,
                     std::int64_t words, std::int64_t k, std::int32_t* c) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t differ = 0;
      for (std::int64_t q = 0; q < words; ++q) {
        differ += __builtin_popcountll(a[i * words + q] ^ w[j * words + q]);
      }
      c[i * n + j] = static_cast<std::int32_t>(k - 2 * differ);
    }
  }
}

namespace {

void ukernel_scalar(std::int64_t mr, std::int64_t nr, std::int64_t kc, const std::uint64_t* a,
                    std::int64_t lda, const std::uint64_t* wt, std::int32_t* c, std::int64_t ldc,
                    std::int32_t k_bits, unsigned flags) {
  for (std::int64_t i = 0; i < mr; ++i) {
    for (std::int64_t j = 0; j < nr; ++j) {
      std::int64_t s = 0;
      for (std::int64_t q = 0; q < kc; ++q) s += __builtin_popcountll(a[i * lda + q] ^ wt[q * kBgemmNR + j]);
      if (!(flags & kBgemmFirst)) s += c[i * ldc + j];
      c[i * ldc + j] = static_cast<std::int32_t>((flags & kBgemmLast) ? k_bits - 2 * s : s);
    }
  }
}

void ukernel_seg_scalar(std::int64_t mr, std::int64_t nr, std::int64_t nseg, const std::uint64_t* const* seg,
                        std::int64_t seg_words, std::int64_t pix, const std::uint64_t* wt, std::int32_t* c,
                        std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  for (std::int64_t i = 0; i < mr; ++i) {
    for (std::int64_t j = 0; j < nr; ++j) {
      std::int64_t s = 0;
      for (std::int64_t q = 0; q < nseg; ++q) {
        for (std::int64_t w = 0; w < seg_words; ++w) {
          s += __builtin_popcountll(seg[q][i * pix + w] ^ wt[(q * seg_words + w) * kBgemmNR + j]);
        }
      }
      if (!(flags & kBgemmFirst)) s += c[i * ldc + j];
      c[i * ldc + j] = static_cast<std::int32_t>((flags & kBgemmLast) ? k_bits - 2 * s : s);
    }
  }
}

void threshold_scalar(std::int64_t mr, std::int64_t nr, const std::int32_t* c, std::int64_t ldc,
                      const std::int32_t* thresh, std::uint32_t neg, std::uint32_t* out, std::int64_t ldo) {
  for (std::int64_t i = 0; i < mr; ++i) {
    std::uint32_t bits = 0;
    for (std::int64_t j = 0; j < nr; ++j) {
      const std::int32_t v = c[i * ldc + j];
      const bool minus = ((neg >> j) & 1u) ? v > thresh[j] : v < thresh[j];
      bits |= static_cast<std::uint32_t>(minus) << j;
    }
    out[i * ldo] = bits;
  }
}

}  // namespace

const BgemmKernels kBgemmScalar = {4, ukernel_scalar, threshold_scalar, nullptr, "none", ukernel_seg_scalar};

}  // namespace onebit
