// AVX-512 float x binary GEMM kernel: 16-entry look-up tables permuted by weight nibbles.
//
// For each row of x and group of 4 columns, the 16 signed sums T[g][p] (fgemm_bw.h) are
// one zmm. A weight vector (one panel of 16 rows, 32 columns: 16 uint32 lanes) holds 8
// nibbles per lane; for nibble g, vpermps picks T[g][nibble of lane b] into lane b, and
// one vaddps accumulates it:
//     acc[i][v] += permutexvar(idx[v] >> 4 g, T_i[g])          (64 MACs per 2 uops)
// Register blocking: up to 6 rows of x x up to 6 panels (24 zmm accumulators at 6 x 4),
// the weight vectors loaded once per 32 columns and shifted in place (shared by the
// rows), the tables read once per (row, group) (shared by the panels). Accumulators are
// float32 over blocks of kFgemmBwKC columns, then added in double (the accuracy bound).
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>
#include <cstring>

#include "fgemm_bw.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include "immintrin_quiet.h"

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw")))

namespace onebit {
namespace {

constexpr int kMR = 6;
// Panels per block by rows of x (measured on Zen 5: ~1 permute per cycle for all of these).
constexpr int kNV[kMR + 1] = {0, 6, 6, 4, 3, 4, 4};
constexpr std::int64_t kBlockDwords = kFgemmBwKC / 32;

// t_j = +-x_j by lane: lane p has the sign bit where bit j of p is 1.
ONEBIT_TARGET_AVX512 __m512i sign_lanes(int j) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(lanes, j), _mm512_set1_epi32(1)), 31);
}

// T = (t0 + t1) + (t2 + t3) for the 4 values at v.
ONEBIT_TARGET_AVX512 __m512 table_of(const float* v, const __m512i* s) {
  const __m512 t0 = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(v[0])), s[0]));
  const __m512 t1 = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(v[1])), s[1]));
  const __m512 t2 = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(v[2])), s[2]));
  const __m512 t3 = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(_mm512_set1_ps(v[3])), s[3]));
  return _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3));
}

ONEBIT_TARGET_AVX512 void tables_avx512(const float* x, std::int64_t m, std::int64_t k, float* t) {
  const std::int64_t ldt = fgemm_bw_table_floats(k), groups = ldt / 16, full = k / 4;
  const __m512i s[4] = {sign_lanes(0), sign_lanes(1), sign_lanes(2), sign_lanes(3)};
  for (std::int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    float* ti = t + i * ldt;
    for (std::int64_t g = 0; g < full; ++g) _mm512_store_ps(ti + 16 * g, table_of(xi + 4 * g, s));
    std::int64_t g = full;
    if (k % 4 != 0) {
      float rest[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      std::memcpy(rest, xi + 4 * g, static_cast<std::size_t>(k % 4) * sizeof(float));
      _mm512_store_ps(ti + 16 * g, table_of(rest, s));
      ++g;
    }
    const float zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (; g < groups; ++g) _mm512_store_ps(ti + 16 * g, table_of(zero, s));
  }
}

// One group of 4 columns: acc[i][v] += T_i[g][nibble of idx[v]], then the next nibble.
template <int MR, int NV>
ONEBIT_TARGET_AVX512 __attribute__((always_inline)) inline void group_step(__m512 (&acc)[MR][NV], __m512i (&idx)[NV],
                                                                         const float* tg, std::int64_t ldt) {
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    const __m512 tv = _mm512_load_ps(tg + i * ldt);
#pragma GCC unroll 6
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_permutexvar_ps(idx[v], tv));
  }
#pragma GCC unroll 6
  for (int v = 0; v < NV; ++v) idx[v] = _mm512_srli_epi32(idx[v], 4);
}

// Rows i < MR (tables t + i * ldt) x NV consecutive panels (wp, stride pstride uint32):
// y[i * ldy + j] for j < cols (16 (NV - 1) < cols <= 16 NV).
template <int MR, int NV>
ONEBIT_TARGET_AVX512 void block(const float* t, std::int64_t ldt, const std::uint32_t* wp, std::int64_t pstride,
                                std::int64_t dwords, float* y, std::int64_t ldy, std::int64_t cols) {
  alignas(64) double p[MR][NV][16];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v)
      for (int l = 0; l < 16; ++l) p[i][v][l] = 0.0;

  for (std::int64_t w0 = 0; w0 < dwords; w0 += kBlockDwords) {
    const std::int64_t w1 = dwords - w0 < kBlockDwords ? dwords : w0 + kBlockDwords;
    __m512 acc[MR][NV];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    for (std::int64_t w = w0; w < w1; ++w) {
      __m512i idx[NV];
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) idx[v] = _mm512_load_si512(wp + v * pstride + w * 16);
      const float* tw = t + w * 8 * 16;
      // One row: unrolled (6 chains, no pressure). More rows: GCC hoists the permutes of
      // a fully unrolled group loop above the adds and spills them, so unroll 2.
      if constexpr (MR == 1) {
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) group_step<MR, NV>(acc, idx, tw + 16 * g, ldt);
      } else {
#pragma GCC unroll 2
        for (int g = 0; g < 8; ++g) group_step<MR, NV>(acc, idx, tw + 16 * g, ldt);
      }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) {
        const __m512 a = acc[i][v];
        const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
        const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
        _mm512_store_pd(&p[i][v][0], _mm512_add_pd(_mm512_load_pd(&p[i][v][0]), lo));
        _mm512_store_pd(&p[i][v][8], _mm512_add_pd(_mm512_load_pd(&p[i][v][8]), hi));
      }
    }
  }

  for (int i = 0; i < MR; ++i) {
    for (int v = 0; v < NV; ++v) {
      const __m256 lo = _mm512_cvtpd_ps(_mm512_load_pd(&p[i][v][0]));
      const __m256 hi = _mm512_cvtpd_ps(_mm512_load_pd(&p[i][v][8]));
      const __m512 r = _mm512_castpd_ps(
          _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
      const std::int64_t left = cols - 16 * v;
      const auto keep = static_cast<__mmask16>(left >= 16 ? 0xffffu : (1u << left) - 1u);
      _mm512_mask_storeu_ps(y + i * ldy + 16 * v, keep, r);
    }
  }
}

using BlockFn = void (*)(const float*, std::int64_t, const std::uint32_t*, std::int64_t, std::int64_t, float*,
                         std::int64_t, std::int64_t);

// kBlocks[mr][nv - 1]: mr rows x nv panels, nv <= kNV[mr].
template <int MR>
constexpr BlockFn kRow[6] = {block<MR, 1>, block<MR, 2>, block<MR, 3>, block<MR, (kNV[MR] >= 4 ? 4 : 1)>,
                             block<MR, (kNV[MR] >= 5 ? 5 : 1)>, block<MR, (kNV[MR] >= 6 ? 6 : 1)>};
constexpr const BlockFn* kBlocks[kMR + 1] = {nullptr, kRow<1>, kRow<2>, kRow<3>, kRow<4>, kRow<5>, kRow<6>};

ONEBIT_TARGET_AVX512 void run_avx512(const float* /*x*/, const float* t, std::int64_t m, const BinaryWeightsF32& w,
                                     std::int64_t p0, std::int64_t p1, float* y) {
  const std::int64_t n = w.n(), ldt = fgemm_bw_table_floats(w.k()), dwords = w.dwords();
  const std::int64_t pstride = dwords * kFgemmBwPanelRows;
  for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
    const int mr = static_cast<int>(m - i0 < kMR ? m - i0 : kMR);
    for (std::int64_t p = p0; p < p1;) {
      const std::int64_t nv = p1 - p < kNV[mr] ? p1 - p : kNV[mr];
      const std::int64_t left = n - p * kFgemmBwPanelRows;
      kBlocks[mr][nv - 1](t + i0 * ldt, ldt, w.panel(p), pstride, dwords, y + i0 * n + p * kFgemmBwPanelRows, n,
                          left < nv * kFgemmBwPanelRows ? left : nv * kFgemmBwPanelRows);
      p += nv;
    }
  }
}

}  // namespace

const FgemmBwKernels kFgemmBwAvx512 = {tables_avx512, run_avx512, 250000.0};

}  // namespace onebit

#else  // not x86

namespace onebit {
const FgemmBwKernels kFgemmBwAvx512 = {nullptr, nullptr, 1.0};
}  // namespace onebit

#endif
