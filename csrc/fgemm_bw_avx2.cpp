// AVX2 float x binary GEMM kernel: 16-entry look-up tables as two ymm halves, permuted by
// weight nibbles and blended on the nibble's top bit.
//
// The tables T[g][p] (fgemm_bw.h) are the same numbers the AVX-512 kernel uses, as two
// ymm: T[g][0..7] and T[g][8..15]. A weight vector half (8 rows of a panel, 32 columns)
// holds 8 nibbles per lane; for nibble g
//     acc[i][h] += blendv(permutevar8x32(T_lo, idx), permutevar8x32(T_hi, idx), idx << 28)
// (vpermps uses the nibble's 3 low bits, vblendvps its bit 3 shifted into the sign), 32
// MACs per 4 uops. The adds happen in the same order as in the AVX-512 kernel, and the
// float32 blocks of kFgemmBwKC columns go to double at the same points, so the two ISAs
// give the same bits. Register blocking: up to 4 rows of x x up to 4 halves (2 panels).
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>
#include <cstring>

#include "fgemm_bw.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX2 __attribute__((target("avx2,popcnt")))

namespace onebit {
namespace {

constexpr int kMR = 4;
// Halves (8 weight rows) per block by rows of x: at most 16 ymm live (accumulators,
// weight vectors, blend selectors, table halves).
constexpr int kNH[kMR + 1] = {0, 4, 4, 2, 2};
constexpr std::int64_t kBlockDwords = kFgemmBwKC / 32;

// Lane l of half `hi` is table entry p = 8 hi + l; sign bit where bit j of p is 1.
ONEBIT_TARGET_AVX2 __m256i sign_lanes(int j, int hi) {
  const __m256i lanes = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * hi));
  return _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(lanes, j), _mm256_set1_epi32(1)), 31);
}

// T = (t0 + t1) + (t2 + t3) for the 4 values at v (one half of the 16 entries).
ONEBIT_TARGET_AVX2 __m256 table_of(const float* v, const __m256i* s) {
  const __m256 t0 = _mm256_xor_ps(_mm256_broadcast_ss(v + 0), _mm256_castsi256_ps(s[0]));
  const __m256 t1 = _mm256_xor_ps(_mm256_broadcast_ss(v + 1), _mm256_castsi256_ps(s[1]));
  const __m256 t2 = _mm256_xor_ps(_mm256_broadcast_ss(v + 2), _mm256_castsi256_ps(s[2]));
  const __m256 t3 = _mm256_xor_ps(_mm256_broadcast_ss(v + 3), _mm256_castsi256_ps(s[3]));
  return _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
}

ONEBIT_TARGET_AVX2 void tables_avx2(const float* x, std::int64_t m, std::int64_t k, float* t) {
  const std::int64_t ldt = fgemm_bw_table_floats(k), groups = ldt / 16, full = k / 4;
  const __m256i lo[4] = {sign_lanes(0, 0), sign_lanes(1, 0), sign_lanes(2, 0), sign_lanes(3, 0)};
  const __m256i hi[4] = {sign_lanes(0, 1), sign_lanes(1, 1), sign_lanes(2, 1), sign_lanes(3, 1)};
  const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (std::int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    float* ti = t + i * ldt;
    for (std::int64_t g = 0; g < groups; ++g) {
      float rest[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const float* v = xi + 4 * g;
      if (g >= full) {
        if (g == full && k % 4 != 0) {
          std::memcpy(rest, v, static_cast<std::size_t>(k % 4) * sizeof(float));
          v = rest;
        } else {
          v = zero;
        }
      }
      _mm256_store_ps(ti + 16 * g, table_of(v, lo));
      _mm256_store_ps(ti + 16 * g + 8, table_of(v, hi));
    }
  }
}

// Rows i < MR (tables t + i * ldt) x NH halves of consecutive panels (wp, stride pstride
// uint32): y[i * ldy + j] for j < cols (8 (NH - 1) < cols <= 8 NH).
template <int MR, int NH>
ONEBIT_TARGET_AVX2 void block(const float* t, std::int64_t ldt, const std::uint32_t* wp, std::int64_t pstride,
                              std::int64_t dwords, float* y, std::int64_t ldy, std::int64_t cols) {
  alignas(32) double p[MR][NH][8];
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < NH; ++h)
      for (int l = 0; l < 8; ++l) p[i][h][l] = 0.0;

  for (std::int64_t w0 = 0; w0 < dwords; w0 += kBlockDwords) {
    const std::int64_t w1 = dwords - w0 < kBlockDwords ? dwords : w0 + kBlockDwords;
    __m256 acc[MR][NH];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int h = 0; h < NH; ++h) acc[i][h] = _mm256_setzero_ps();
    for (std::int64_t w = w0; w < w1; ++w) {
      __m256i idx[NH];
#pragma GCC unroll 4
      for (int h = 0; h < NH; ++h) {
        idx[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wp + (h / 2) * pstride + w * 16 + (h % 2) * 8));
      }
      const float* tw = t + w * 8 * 16;
#pragma GCC unroll 1
      for (int g = 0; g < 8; ++g) {
        __m256 sel[NH];
#pragma GCC unroll 4
        for (int h = 0; h < NH; ++h) sel[h] = _mm256_castsi256_ps(_mm256_slli_epi32(idx[h], 28));
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const __m256 tl = _mm256_load_ps(tw + i * ldt + 16 * g);
          const __m256 th = _mm256_load_ps(tw + i * ldt + 16 * g + 8);
#pragma GCC unroll 4
          for (int h = 0; h < NH; ++h) {
            acc[i][h] = _mm256_add_ps(acc[i][h], _mm256_blendv_ps(_mm256_permutevar8x32_ps(tl, idx[h]),
                                                                  _mm256_permutevar8x32_ps(th, idx[h]), sel[h]));
          }
        }
#pragma GCC unroll 4
        for (int h = 0; h < NH; ++h) idx[h] = _mm256_srli_epi32(idx[h], 4);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
      for (int h = 0; h < NH; ++h) {
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc[i][h]));
        const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc[i][h], 1));
        _mm256_store_pd(&p[i][h][0], _mm256_add_pd(_mm256_load_pd(&p[i][h][0]), lo));
        _mm256_store_pd(&p[i][h][4], _mm256_add_pd(_mm256_load_pd(&p[i][h][4]), hi));
      }
    }
  }

  for (int i = 0; i < MR; ++i) {
    alignas(32) float out[NH * 8];
    for (int h = 0; h < NH; ++h) {
      const __m128 lo = _mm256_cvtpd_ps(_mm256_load_pd(&p[i][h][0]));
      const __m128 hi = _mm256_cvtpd_ps(_mm256_load_pd(&p[i][h][4]));
      _mm256_store_ps(out + 8 * h, _mm256_set_m128(hi, lo));
    }
    std::memcpy(y + i * ldy, out, static_cast<std::size_t>(cols < NH * 8 ? cols : NH * 8) * sizeof(float));
  }
}

using BlockFn = void (*)(const float*, std::int64_t, const std::uint32_t*, std::int64_t, std::int64_t, float*,
                         std::int64_t, std::int64_t);

// kBlocks[mr][0]: 2 halves (1 panel); kBlocks[mr][1]: kNH[mr] halves.
constexpr BlockFn kBlocks[kMR + 1][2] = {{nullptr, nullptr},
                                         {block<1, 2>, block<1, kNH[1]>},
                                         {block<2, 2>, block<2, kNH[2]>},
                                         {block<3, 2>, block<3, kNH[3]>},
                                         {block<4, 2>, block<4, kNH[4]>}};

ONEBIT_TARGET_AVX2 void run_avx2(const float* /*x*/, const float* t, std::int64_t m, const BinaryWeightsF32& w,
                                 std::int64_t p0, std::int64_t p1, float* y) {
  const std::int64_t n = w.n(), ldt = fgemm_bw_table_floats(w.k()), dwords = w.dwords();
  const std::int64_t pstride = dwords * kFgemmBwPanelRows;
  for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
    const int mr = static_cast<int>(m - i0 < kMR ? m - i0 : kMR);
    const std::int64_t block_panels = kNH[mr] / 2;
    for (std::int64_t p = p0; p < p1;) {
      const bool whole = p1 - p >= block_panels;
      const std::int64_t panels = whole ? block_panels : 1;
      const std::int64_t left = n - p * kFgemmBwPanelRows;
      const std::int64_t cols = left < panels * kFgemmBwPanelRows ? left : panels * kFgemmBwPanelRows;
      kBlocks[mr][whole ? 1 : 0](t + i0 * ldt, ldt, w.panel(p), pstride, dwords, y + i0 * n + p * kFgemmBwPanelRows,
                                 n, cols);
      p += panels;
    }
  }
}

}  // namespace

const FgemmBwKernels kFgemmBwAvx2 = {tables_avx2, run_avx2, 80000.0};

}  // namespace onebit

#else  // not x86

namespace onebit {
const FgemmBwKernels kFgemmBwAvx2 = {nullptr, nullptr, 1.0};
}  // namespace onebit

#endif
