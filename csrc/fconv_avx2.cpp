// AVX2 + FMA float convolution kernels (fconv.h): the FMA chains of the specification, a
// panel of 16 output channels as two ymm.
//
// GEMM: register blocks of up to 6 output pixels x 1 panel (12 ymm accumulators, 2 for
// the panel's weights, 1 broadcast); k ascending, acc = fma(in, w, acc), as the reference;
// then the output stage on the registers.
// Depthwise: channels in the lanes, 4 pixels x 8 channels per block, a tap loop.
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code. fconv_kernels() hands these out only where the CPU has FMA.
#include <cstdint>

#include "fconv.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX2 __attribute__((target("avx2,fma")))

namespace onebit {
namespace {

constexpr int kMR = 6;

ONEBIT_TARGET_AVX2 __m256i lanes_below(std::int64_t left) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int l = static_cast<int>(left >= 8 ? 8 : left <= 0 ? 0 : left);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), lanes);
}

// Pixels i0 + p, p < MR (inputs at seg[s] + off + p * pstride) x one panel, written as out says.
template <int MR>
ONEBIT_TARGET_AVX2 void block(const float* const* seg, const std::int64_t* len, std::int64_t nseg, std::int64_t off,
                              std::int64_t pstride, const float* w, const FconvOut& out, std::int64_t i0,
                              std::int64_t panel) {
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int p = 0; p < MR; ++p) acc[p][0] = acc[p][1] = _mm256_setzero_ps();
  const float* wk = w;
  for (std::int64_t s = 0; s < nseg; ++s) {
    const float* in[MR];
#pragma GCC unroll 6
    for (int p = 0; p < MR; ++p) in[p] = seg[s] + off + p * pstride;
    const std::int64_t l = len[s];
    for (std::int64_t q = 0; q < l; ++q, wk += kFconvPanel) {
      const __m256 w0 = _mm256_load_ps(wk), w1 = _mm256_load_ps(wk + 8);
#pragma GCC unroll 6
      for (int p = 0; p < MR; ++p) {
        const __m256 xb = _mm256_broadcast_ss(in[p] + q);
        acc[p][0] = _mm256_fmadd_ps(xb, w0, acc[p][0]);
        acc[p][1] = _mm256_fmadd_ps(xb, w1, acc[p][1]);
      }
    }
  }
  if (out.kind == FconvOut::raw) {
    float* y = static_cast<float*>(out.y) + i0 * out.ldy + panel * kFconvPanel;
#pragma GCC unroll 6
    for (int p = 0; p < MR; ++p) {
      _mm256_storeu_ps(y + p * out.ldy, acc[p][0]);
      _mm256_storeu_ps(y + p * out.ldy + 8, acc[p][1]);
    }
    return;
  }
  const std::int64_t j0 = panel * kFconvPanel;
  const __m256 sc[2] = {_mm256_loadu_ps(out.scale + j0), _mm256_loadu_ps(out.scale + j0 + 8)};
  const __m256 bi[2] = {_mm256_loadu_ps(out.bias + j0), _mm256_loadu_ps(out.bias + j0 + 8)};
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f);
  const __m256i keep[2] = {lanes_below(out.cols - j0), lanes_below(out.cols - j0 - 8)};
#pragma GCC unroll 6
  for (int p = 0; p < MR; ++p) {
    __m256 z[2];
    for (int h = 0; h < 2; ++h) {
      __m256 t = _mm256_mul_ps(acc[p][h], sc[h]);
      __asm__("" : "+v"(t));  // two roundings, as specified: keeps GCC from contracting into an FMA
      z[h] = _mm256_add_ps(t, bi[h]);
      if (out.act == FconvAct::relu) {
        z[h] = _mm256_max_ps(z[h], zero);
      } else if (out.act == FconvAct::hardtanh) {
        z[h] = _mm256_min_ps(_mm256_max_ps(z[h], minus_one), one);
      }
    }
    if (out.kind == FconvOut::bits) {
      const int lo = _mm256_movemask_ps(_mm256_cmp_ps(z[0], zero, _CMP_LT_OQ));
      const int hi = _mm256_movemask_ps(_mm256_cmp_ps(z[1], zero, _CMP_LT_OQ));
      static_cast<std::uint16_t*>(out.y)[(i0 + p) * out.ldy + panel] = static_cast<std::uint16_t>(lo | (hi << 8));
    } else {
      float* y = static_cast<float*>(out.y) + (i0 + p) * out.ldy + j0;
      _mm256_maskstore_ps(y, keep[0], z[0]);
      _mm256_maskstore_ps(y + 8, keep[1], z[1]);
    }
  }
}

using BlockFn = void (*)(const float* const*, const std::int64_t*, std::int64_t, std::int64_t, std::int64_t,
                         const float*, const FconvOut&, std::int64_t, std::int64_t);
constexpr BlockFn kBlocks[kMR + 1] = {nullptr, block<1>, block<2>, block<3>, block<4>, block<5>, block<6>};

ONEBIT_TARGET_AVX2 void gemm_avx2(const float* const* seg, const std::int64_t* len, std::int64_t nseg, std::int64_t m,
                                  std::int64_t pstride, const float* w, std::int64_t kdim, std::int64_t panels,
                                  const FconvOut& out) {
  const std::int64_t wstride = kdim * kFconvPanel;
  for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
    const int mr = static_cast<int>(m - i0 < kMR ? m - i0 : kMR);
    for (std::int64_t p = 0; p < panels; ++p) kBlocks[mr](seg, len, nseg, i0 * pstride, pstride, w + p * wstride, out, i0, p);
  }
}

// PX pixels (q0 + p) x one vector of channels c0 .. c0 + 7 (mask m): PX independent chains,
// the tap's weights loaded once for all of them.
template <int PX>
ONEBIT_TARGET_AVX2 void depthwise_block(const float* const* rows, std::int64_t q0, std::int64_t c0, __m256i m,
                                        std::int64_t channels, std::int64_t kh, std::int64_t kw, std::int64_t sw,
                                        std::int64_t dw, const float* w, float* y) {
  __m256 acc[PX];
#pragma GCC unroll 4
  for (int p = 0; p < PX; ++p) acc[p] = _mm256_setzero_ps();
  for (std::int64_t i = 0; i < kh; ++i) {
    for (std::int64_t j = 0; j < kw; ++j) {
      const __m256 wt = _mm256_maskload_ps(w + (i * kw + j) * channels + c0, m);
      const float* src = rows[i] + (q0 * sw + j * dw) * channels + c0;
#pragma GCC unroll 4
      for (int p = 0; p < PX; ++p) acc[p] = _mm256_fmadd_ps(_mm256_maskload_ps(src + p * sw * channels, m), wt, acc[p]);
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < PX; ++p) _mm256_maskstore_ps(y + (q0 + p) * channels + c0, m, acc[p]);
}

ONEBIT_TARGET_AVX2 void depthwise_avx2(const float* const* rows, std::int64_t ow, std::int64_t channels,
                                       std::int64_t kh, std::int64_t kw, std::int64_t sw, std::int64_t dw,
                                       const float* w, float* y) {
  for (std::int64_t c0 = 0; c0 < channels; c0 += 8) {
    const __m256i m = lanes_below(channels - c0);
    std::int64_t q = 0;
    for (; q + 4 <= ow; q += 4) depthwise_block<4>(rows, q, c0, m, channels, kh, kw, sw, dw, w, y);
    for (; q < ow; ++q) depthwise_block<1>(rows, q, c0, m, channels, kh, kw, sw, dw, w, y);
  }
}

// y < x ? x : y, i.e. vmaxps(x, y) (which returns its second operand unless the first is greater).
ONEBIT_TARGET_AVX2 void max_avx2(float* y, const float* x, std::int64_t count) {
  std::int64_t i = 0;
  for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < count; ++i) y[i] = y[i] < x[i] ? x[i] : y[i];
}

// The max-pool and stage of one output row (fconv.h), 8 channels per ymm: per column the
// rows' max, then the columns' (vmaxps(x, y) returns y unless x > y: max(x, y) as specified).
ONEBIT_TARGET_AVX2 void pool_stage_avx2(const float* const* rows, std::int64_t nrows, std::int64_t ow,
                                        std::int64_t ytot, std::int64_t pw, std::int64_t kw, std::int64_t sw,
                                        std::int64_t pad, const float* scale, const float* bias, FconvAct act,
                                        std::int64_t cols, float* out) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), minus_one = _mm256_set1_ps(-1.0f);
  for (std::int64_t q = 0; q < pw; ++q) {
    const std::int64_t k0 = q * sw - pad < 0 ? 0 : q * sw - pad;
    const std::int64_t k1 = q * sw - pad + kw < ow ? q * sw - pad + kw : ow;
    for (std::int64_t c0 = 0; c0 < cols; c0 += 8) {
      const __m256i m = lanes_below(cols - c0);
      __m256 best = _mm256_setzero_ps();
      for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t at = k * ytot + c0;
        __m256 t = _mm256_maskload_ps(rows[0] + at, m);
        for (std::int64_t i = 1; i < nrows; ++i) t = _mm256_max_ps(_mm256_maskload_ps(rows[i] + at, m), t);
        best = k == k0 ? t : _mm256_max_ps(t, best);
      }
      if (scale != nullptr) {
        __m256 p = _mm256_mul_ps(best, _mm256_maskload_ps(scale + c0, m));
        __asm__("" : "+x"(p));  // two roundings: no contraction into an FMA
        best = _mm256_add_ps(p, _mm256_maskload_ps(bias + c0, m));
        if (act == FconvAct::relu) {
          best = _mm256_max_ps(best, zero);
        } else if (act == FconvAct::hardtanh) {
          best = _mm256_min_ps(_mm256_max_ps(best, minus_one), one);
        }
      }
      _mm256_maskstore_ps(out + q * cols + c0, m, best);
    }
  }
}
// A transition part's row (fconv.h), 8 channels per ymm, as the AVX-512 kernel.
ONEBIT_TARGET_AVX2 inline __m256 affine8(const float* p, __m256i m, __m256 sc, __m256 bi) {
  __m256 t = _mm256_mul_ps(_mm256_maskload_ps(p, m), sc);
  __asm__("" : "+x"(t));  // two roundings: no contraction into an FMA
  return _mm256_add_ps(t, bi);
}

ONEBIT_TARGET_AVX2 void affine_pool_avx2(const float* const* rows, std::int64_t nrows, std::int64_t w, std::int64_t ldx,
                                         std::int64_t c, std::int64_t pw, std::int64_t kw, std::int64_t sw,
                                         std::int64_t pad, const float* scale, const float* bias, bool relu, float* out,
                                         std::int64_t ldo) {
  const __m256 zero = _mm256_setzero_ps();
  for (std::int64_t c0 = 0; c0 < c; c0 += 8) {
    const __m256i m = lanes_below(c - c0);
    const __m256 sc = _mm256_maskload_ps(scale + c0, m), bi = _mm256_maskload_ps(bias + c0, m);
    for (std::int64_t q = 0; q < pw; ++q) {
      const std::int64_t k0 = q * sw - pad < 0 ? 0 : q * sw - pad;
      const std::int64_t k1 = q * sw - pad + kw < w ? q * sw - pad + kw : w;
      __m256 best = zero;
      for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t at = k * ldx + c0;
        __m256 t = affine8(rows[0] + at, m, sc, bi);
        for (std::int64_t i = 1; i < nrows; ++i) t = _mm256_max_ps(affine8(rows[i] + at, m, sc, bi), t);
        best = k == k0 ? t : _mm256_max_ps(t, best);
      }
      if (relu) best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LE_OQ));
      _mm256_maskstore_ps(out + q * ldo + c0, m, best);
    }
  }
}

// 12 independent FMA chains of 8 lanes (12 + the 2 operands fit the 16 ymm registers); the empty asm keeps the multiplicands opaque
// so the compiler cannot fold the loop. One iteration = 12 x 8 float MACs.
ONEBIT_TARGET_AVX2 std::uint64_t peak_avx2(std::int64_t iters) {
  __m256 a = _mm256_set1_ps(1.0001f), b = _mm256_set1_ps(0.9999f);
  __m256 c[12];
  for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+v"(a), "+v"(b));
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) c[i] = _mm256_fmadd_ps(a, b, c[i]);
  }
  __m256 sum = c[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, c[i]);
  volatile float sink = _mm256_cvtss_f32(sum);
  (void)sink;
  return static_cast<std::uint64_t>(iters) * 12u * 8u;
}

}  // namespace

const FconvKernels kFconvAvx2 = {gemm_avx2,       depthwise_avx2, max_avx2, pool_stage_avx2, affine_pool_avx2,
                                 50000.0,         peak_avx2};

}  // namespace onebit

#else  // not x86

namespace onebit {
const FconvKernels kFconvAvx2 = {nullptr, nullptr, nullptr, nullptr, nullptr, 1.0, nullptr};
}  // namespace onebit

#endif
