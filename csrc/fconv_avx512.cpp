// AVX-512 float convolution kernels (fconv.h): the FMA chains of the specification, 16
// output channels per zmm.
//
// GEMM: register blocks of up to 6 output pixels x 4 panels (24 zmm accumulators); per
// input k, 4 panel loads (aligned, kdim x 16 floats each) and 6 broadcasts, then 24 FMAs,
// k ascending, so each output is acc = fma(in, w, acc) in the order of the reference;
// then the output stage on the registers (a compare mask gives 16 output bits at once).
// Depthwise: channels in the lanes, 4 pixels x 16 channels per block, a tap loop.
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>

#include "fconv.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include "immintrin_quiet.h"

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,fma")))

namespace onebit {
namespace {

constexpr int kMR = 6, kNV = 4;

// Pixels p < MR (inputs at seg[s] + off + p * pstride) x panels v < NV (w + v * wstride).
ONEBIT_TARGET_AVX512 __mmask16 lanes_below(std::int64_t left) {
  return static_cast<__mmask16>(left >= 16 ? 0xffffu : left <= 0 ? 0u : (1u << left) - 1u);
}

// Pixels i0 + p, p < MR (inputs at seg[s] + off + p * pstride) x panels panel0 + v, v < NV
// (weights w + v * wstride), written as out says.
template <int MR, int NV>
ONEBIT_TARGET_AVX512 void block(const float* const* seg, const std::int64_t* len, std::int64_t nseg, std::int64_t off,
                                std::int64_t pstride, const float* w, std::int64_t wstride, const FconvOut& out,
                                std::int64_t i0, std::int64_t panel0) {
  __m512 acc[MR][NV];
#pragma GCC unroll 6
  for (int p = 0; p < MR; ++p)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_setzero_ps();
  const float* wk = w;
  for (std::int64_t s = 0; s < nseg; ++s) {
    const float* in[MR];
#pragma GCC unroll 6
    for (int p = 0; p < MR; ++p) in[p] = seg[s] + off + p * pstride;
    const std::int64_t l = len[s];
    for (std::int64_t q = 0; q < l; ++q, wk += kFconvPanel) {
      __m512 wv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) wv[v] = _mm512_load_ps(wk + v * wstride);
#pragma GCC unroll 6
      for (int p = 0; p < MR; ++p) {
        const __m512 xb = _mm512_set1_ps(in[p][q]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[p][v] = _mm512_fmadd_ps(xb, wv[v], acc[p][v]);
      }
    }
  }
  if (out.kind == FconvOut::raw) {
    float* y = static_cast<float*>(out.y) + i0 * out.ldy + panel0 * kFconvPanel;
#pragma GCC unroll 6
    for (int p = 0; p < MR; ++p)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(y + p * out.ldy + v * kFconvPanel, acc[p][v]);
    return;
  }
  __m512 sc[NV], bi[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    sc[v] = _mm512_loadu_ps(out.scale + (panel0 + v) * kFconvPanel);
    bi[v] = _mm512_loadu_ps(out.bias + (panel0 + v) * kFconvPanel);
  }
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
#pragma GCC unroll 6
  for (int p = 0; p < MR; ++p) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      __m512 t = _mm512_mul_ps(acc[p][v], sc[v]);
      __asm__("" : "+v"(t));  // two roundings, as specified: keeps GCC from contracting into an FMA
      __m512 z = _mm512_add_ps(t, bi[v]);
      if (out.act == FconvAct::relu) {
        z = _mm512_max_ps(z, zero);
      } else if (out.act == FconvAct::hardtanh) {
        z = _mm512_min_ps(_mm512_max_ps(z, minus_one), one);
      }
      if (out.kind == FconvOut::bits) {
        static_cast<std::uint16_t*>(out.y)[(i0 + p) * out.ldy + panel0 + v] =
            static_cast<std::uint16_t>(_mm512_cmp_ps_mask(z, zero, _CMP_LT_OQ));
      } else {
        _mm512_mask_storeu_ps(static_cast<float*>(out.y) + (i0 + p) * out.ldy + (panel0 + v) * kFconvPanel,
                              lanes_below(out.cols - (panel0 + v) * kFconvPanel), z);
      }
    }
  }
}

using BlockFn = void (*)(const float* const*, const std::int64_t*, std::int64_t, std::int64_t, std::int64_t,
                         const float*, std::int64_t, const FconvOut&, std::int64_t, std::int64_t);

template <int MR>
constexpr BlockFn kRow[kNV] = {block<MR, 1>, block<MR, 2>, block<MR, 3>, block<MR, 4>};
constexpr const BlockFn* kBlocks[kMR + 1] = {nullptr, kRow<1>, kRow<2>, kRow<3>, kRow<4>, kRow<5>, kRow<6>};

ONEBIT_TARGET_AVX512 void gemm_avx512(const float* const* seg, const std::int64_t* len, std::int64_t nseg,
                                      std::int64_t m, std::int64_t pstride, const float* w, std::int64_t kdim,
                                      std::int64_t panels, const FconvOut& out) {
  const std::int64_t wstride = kdim * kFconvPanel;
  for (std::int64_t i0 = 0; i0 < m; i0 += kMR) {
    const int mr = static_cast<int>(m - i0 < kMR ? m - i0 : kMR);
    for (std::int64_t p = 0; p < panels; p += kNV) {
      const int nv = static_cast<int>(panels - p < kNV ? panels - p : kNV);
      kBlocks[mr][nv - 1](seg, len, nseg, i0 * pstride, pstride, w + p * wstride, wstride, out, i0, p);
    }
  }
}

// PX pixels (q0 + p) x one vector of channels c0 .. c0 + 15 (mask m): PX independent chains,
// the tap's weights loaded once for all of them.
template <int PX>
ONEBIT_TARGET_AVX512 void depthwise_block(const float* const* rows, std::int64_t q0, std::int64_t c0, __mmask16 m,
                                          std::int64_t channels, std::int64_t kh, std::int64_t kw, std::int64_t sw,
                                          std::int64_t dw, const float* w, float* y) {
  __m512 acc[PX];
#pragma GCC unroll 4
  for (int p = 0; p < PX; ++p) acc[p] = _mm512_setzero_ps();
  for (std::int64_t i = 0; i < kh; ++i) {
    for (std::int64_t j = 0; j < kw; ++j) {
      const __m512 wt = _mm512_maskz_loadu_ps(m, w + (i * kw + j) * channels + c0);
      const float* src = rows[i] + (q0 * sw + j * dw) * channels + c0;
#pragma GCC unroll 4
      for (int p = 0; p < PX; ++p) {
        acc[p] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, src + p * sw * channels), wt, acc[p]);
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < PX; ++p) _mm512_mask_storeu_ps(y + (q0 + p) * channels + c0, m, acc[p]);
}

ONEBIT_TARGET_AVX512 void depthwise_avx512(const float* const* rows, std::int64_t ow, std::int64_t channels,
                                           std::int64_t kh, std::int64_t kw, std::int64_t sw, std::int64_t dw,
                                           const float* w, float* y) {
  for (std::int64_t c0 = 0; c0 < channels; c0 += 16) {
    const __mmask16 m = lanes_below(channels - c0);
    std::int64_t q = 0;
    for (; q + 4 <= ow; q += 4) depthwise_block<4>(rows, q, c0, m, channels, kh, kw, sw, dw, w, y);
    for (; q < ow; ++q) depthwise_block<1>(rows, q, c0, m, channels, kh, kw, sw, dw, w, y);
  }
}

// y < x ? x : y, i.e. vmaxps(x, y) (which returns its second operand unless the first is greater).
ONEBIT_TARGET_AVX512 void max_avx512(float* y, const float* x, std::int64_t count) {
  std::int64_t i = 0;
  for (; i + 16 <= count; i += 16) _mm512_storeu_ps(y + i, _mm512_max_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  if (i < count) {
    const __mmask16 m = lanes_below(count - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// The max-pool and stage of one output row (fconv.h), 16 channels per zmm: per column the
// rows' max, then the columns' (vmaxps(x, y) returns y unless x > y: max(x, y) as specified).
ONEBIT_TARGET_AVX512 void pool_stage_avx512(const float* const* rows, std::int64_t nrows, std::int64_t ow,
                                            std::int64_t ytot, std::int64_t pw, std::int64_t kw, std::int64_t sw,
                                            std::int64_t pad, const float* scale, const float* bias, FconvAct act,
                                            std::int64_t cols, float* out) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  for (std::int64_t q = 0; q < pw; ++q) {
    const std::int64_t k0 = q * sw - pad < 0 ? 0 : q * sw - pad;
    const std::int64_t k1 = q * sw - pad + kw < ow ? q * sw - pad + kw : ow;
    for (std::int64_t c0 = 0; c0 < cols; c0 += 16) {
      const __mmask16 m = lanes_below(cols - c0);
      __m512 best = _mm512_setzero_ps();
      for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t at = k * ytot + c0;
        __m512 t = _mm512_maskz_loadu_ps(m, rows[0] + at);
        for (std::int64_t i = 1; i < nrows; ++i) t = _mm512_max_ps(_mm512_maskz_loadu_ps(m, rows[i] + at), t);
        best = k == k0 ? t : _mm512_max_ps(t, best);
      }
      if (scale != nullptr) {
        __m512 p = _mm512_mul_ps(best, _mm512_maskz_loadu_ps(m, scale + c0));
        __asm__("" : "+v"(p));  // two roundings: no contraction into an FMA
        best = _mm512_add_ps(p, _mm512_maskz_loadu_ps(m, bias + c0));
        if (act == FconvAct::relu) {
          best = _mm512_max_ps(best, zero);
        } else if (act == FconvAct::hardtanh) {
          best = _mm512_min_ps(_mm512_max_ps(best, minus_one), one);
        }
      }
      _mm512_mask_storeu_ps(out + q * cols + c0, m, best);
    }
  }
}
// A transition part's row (fconv.h): per 16-channel vector, each tap through the affine,
// then the rows' max per column and the columns' max, as specified; relu by a compare
// (m <= 0 -> +0, NaN kept), not vmaxps (which would turn NaN into 0).
ONEBIT_TARGET_AVX512 inline __m512 affine16(const float* p, __mmask16 m, __m512 sc, __m512 bi) {
  __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p), sc);
  __asm__("" : "+v"(t));  // two roundings: no contraction into an FMA
  return _mm512_add_ps(t, bi);
}

ONEBIT_TARGET_AVX512 void affine_pool_avx512(const float* const* rows, std::int64_t nrows, std::int64_t w,
                                             std::int64_t ldx, std::int64_t c, std::int64_t pw, std::int64_t kw,
                                             std::int64_t sw, std::int64_t pad, const float* scale, const float* bias,
                                             bool relu, float* out, std::int64_t ldo) {
  const __m512 zero = _mm512_setzero_ps();
  for (std::int64_t c0 = 0; c0 < c; c0 += 16) {
    const __mmask16 m = lanes_below(c - c0);
    const __m512 sc = _mm512_maskz_loadu_ps(m, scale + c0), bi = _mm512_maskz_loadu_ps(m, bias + c0);
    for (std::int64_t q = 0; q < pw; ++q) {
      const std::int64_t k0 = q * sw - pad < 0 ? 0 : q * sw - pad;
      const std::int64_t k1 = q * sw - pad + kw < w ? q * sw - pad + kw : w;
      __m512 best = zero;
      for (std::int64_t k = k0; k < k1; ++k) {
        const std::int64_t at = k * ldx + c0;
        __m512 t = affine16(rows[0] + at, m, sc, bi);
        for (std::int64_t i = 1; i < nrows; ++i) t = _mm512_max_ps(affine16(rows[i] + at, m, sc, bi), t);
        best = k == k0 ? t : _mm512_max_ps(t, best);
      }
      if (relu) best = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(best, zero, _CMP_LE_OQ), best, zero);
      _mm512_mask_storeu_ps(out + q * ldo + c0, m, best);
    }
  }
}

// 16 independent FMA chains of 16 lanes; the empty asm keeps the multiplicands opaque
// so the compiler cannot fold the loop. One iteration = 16 x 16 float MACs.
ONEBIT_TARGET_AVX512 std::uint64_t peak_avx512(std::int64_t iters) {
  __m512 a = _mm512_set1_ps(1.0001f), b = _mm512_set1_ps(0.9999f);
  __m512 c[16];
  for (int i = 0; i < 16; ++i) c[i] = _mm512_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+v"(a), "+v"(b));
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) c[i] = _mm512_fmadd_ps(a, b, c[i]);
  }
  __m512 sum = c[0];
  for (int i = 1; i < 16; ++i) sum = _mm512_add_ps(sum, c[i]);
  volatile float sink = _mm512_cvtss_f32(sum);
  (void)sink;
  return static_cast<std::uint64_t>(iters) * 16u * 16u;
}

}  // namespace

const FconvKernels kFconvAvx512 = {gemm_avx512,        depthwise_avx512,   max_avx512, pool_stage_avx512,
                                   affine_pool_avx512, 120000.0,           peak_avx512};

}  // namespace onebit

#else  // not x86

namespace onebit {
const FconvKernels kFconvAvx512 = {nullptr, nullptr, nullptr, nullptr, nullptr, 1.0, nullptr};
}  // namespace onebit

#endif
