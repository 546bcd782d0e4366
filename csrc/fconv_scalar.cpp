// Scalar float convolution: the reference, which is also the specification (fconv.h),
// and the scalar kernels. Plain loops with std::fma, portable to any architecture; the
// SIMD kernels evaluate the same FMA chains and must give the same bits.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fconv.h"

namespace onebit {

void fconv_reference(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                     const float* weights, std::int64_t o, std::int64_t kh, std::int64_t kw, std::int64_t groups,
                     std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                     std::array<std::int64_t, 2> dilation, float pad_value, float* y) {
  const std::int64_t cg = c / groups, og = o / groups;
  const std::int64_t oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) / stride[0] + 1;
  const std::int64_t ow = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) / stride[1] + 1;
  for (std::int64_t b = 0; b < n; ++b) {
    for (std::int64_t r = 0; r < oh; ++r) {
      for (std::int64_t q = 0; q < ow; ++q) {
        for (std::int64_t oc = 0; oc < o; ++oc) {
          const std::int64_t g = oc / og;
          float acc = 0.0f;
          for (std::int64_t i = 0; i < kh; ++i) {
            const std::int64_t ih = r * stride[0] - padding[0] + i * dilation[0];
            for (std::int64_t j = 0; j < kw; ++j) {
              const std::int64_t iw = q * stride[1] - padding[1] + j * dilation[1];
              const bool inside = ih >= 0 && ih < h && iw >= 0 && iw < w;
              for (std::int64_t k = 0; k < cg; ++k) {
                const float v = inside ? x[((b * h + ih) * w + iw) * c + g * cg + k] : pad_value;
                acc = std::fma(v, weights[((oc * kh + i) * kw + j) * cg + k], acc);
              }
            }
          }
          y[((b * oh + r) * ow + q) * o + oc] = acc;
        }
      }
    }
  }
}

namespace {

// The output stage of FconvOut on one value (shared by nothing else: TU-local).
float staged(float acc, const FconvOut& out, std::int64_t j) {
  float t = acc * out.scale[j];
#if defined(__GNUC__) || defined(__clang__)
  __asm__("" : "+m"(t));  // two roundings, as specified, also where the baseline has FMA (AArch64)
#endif
  float z = t + out.bias[j];
  if (out.act == FconvAct::relu) {
    z = z > 0.0f ? z : 0.0f;
  } else if (out.act == FconvAct::hardtanh) {
    z = z > -1.0f ? z : -1.0f;
    z = z < 1.0f ? z : 1.0f;
  }
  return z;
}

void gemm_scalar(const float* const* seg, const std::int64_t* len, std::int64_t nseg, std::int64_t m,
                 std::int64_t pstride, const float* w, std::int64_t kdim, std::int64_t panels, const FconvOut& out) {
  for (std::int64_t p = 0; p < m; ++p) {
    for (std::int64_t j = 0; j < panels * kFconvPanel; ++j) {
      const float* wj = w + (j / kFconvPanel) * kdim * kFconvPanel + j % kFconvPanel;
      float acc = 0.0f;
      std::int64_t k = 0;
      for (std::int64_t s = 0; s < nseg; ++s) {
        const float* in = seg[s] + p * pstride;
        for (std::int64_t q = 0; q < len[s]; ++q, ++k) acc = std::fma(in[q], wj[k * kFconvPanel], acc);
      }
      if (out.kind == FconvOut::raw) {
        static_cast<float*>(out.y)[p * out.ldy + j] = acc;
      } else if (out.kind == FconvOut::stage) {
        if (j < out.cols) static_cast<float*>(out.y)[p * out.ldy + j] = staged(acc, out, j);
      } else {
        auto* bits = static_cast<std::uint16_t*>(out.y) + p * out.ldy + j / kFconvPanel;
        if (j % kFconvPanel == 0) *bits = 0;
        if (staged(acc, out, j) < 0.0f) *bits = static_cast<std::uint16_t>(*bits | (1u << (j % kFconvPanel)));
      }
    }
  }
}

void depthwise_scalar(const float* const* rows, std::int64_t ow, std::int64_t channels, std::int64_t kh,
                      std::int64_t kw, std::int64_t sw, std::int64_t dw, const float* w, float* y) {
  for (std::int64_t q = 0; q < ow; ++q) {
    for (std::int64_t c = 0; c < channels; ++c) {
      float acc = 0.0f;
      for (std::int64_t i = 0; i < kh; ++i) {
        for (std::int64_t j = 0; j < kw; ++j) {
          acc = std::fma(rows[i][(q * sw + j * dw) * channels + c], w[(i * kw + j) * channels + c], acc);
        }
      }
      y[q * channels + c] = acc;
    }
  }
}

void max_scalar(float* y, const float* x, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) y[i] = y[i] < x[i] ? x[i] : y[i];
}

void pool_stage_scalar(const float* const* rows, std::int64_t nrows, std::int64_t ow, std::int64_t ytot,
                       std::int64_t pw, std::int64_t kw, std::int64_t sw, std::int64_t pad, const float* scale,
                       const float* bias, FconvAct act, std::int64_t cols, float* out) {
  for (std::int64_t q = 0; q < pw; ++q) {
    const std::int64_t k0 = std::max<std::int64_t>(0, q * sw - pad), k1 = std::min(ow, q * sw - pad + kw);
    for (std::int64_t c = 0; c < cols; ++c) {
      float m = 0.0f;
      for (std::int64_t k = k0; k < k1; ++k) {
        float t = rows[0][k * ytot + c];
        for (std::int64_t i = 1; i < nrows; ++i) {
          const float x = rows[i][k * ytot + c];
          t = t < x ? x : t;
        }
        m = k == k0 || m < t ? t : m;
      }
      if (scale != nullptr) {
        const float p = m * scale[c];
        m = p + bias[c];
        if (act == FconvAct::relu) {
          m = m > 0.0f ? m : 0.0f;
        } else if (act == FconvAct::hardtanh) {
          const float h = m > -1.0f ? m : -1.0f;
          m = h < 1.0f ? h : 1.0f;
        }
      }
      out[q * cols + c] = m;
    }
  }
}

void affine_pool_scalar(const float* const* rows, std::int64_t nrows, std::int64_t w, std::int64_t ldx, std::int64_t c,
                        std::int64_t pw, std::int64_t kw, std::int64_t sw, std::int64_t pad, const float* scale,
                        const float* bias, bool relu, float* out, std::int64_t ldo) {
  for (std::int64_t q = 0; q < pw; ++q) {
    const std::int64_t k0 = std::max<std::int64_t>(0, q * sw - pad), k1 = std::min(w, q * sw - pad + kw);
    for (std::int64_t j = 0; j < c; ++j) {
      float m = 0.0f;
      for (std::int64_t k = k0; k < k1; ++k) {
        float t = 0.0f;
        for (std::int64_t i = 0; i < nrows; ++i) {
          const float p = rows[i][k * ldx + j] * scale[j];
          const float a = p + bias[j];
          t = i == 0 || t < a ? a : t;
        }
        m = k == k0 || m < t ? t : m;
      }
      out[q * ldo + j] = relu && m <= 0.0f ? 0.0f : m;
    }
  }
}

}  // namespace

const FconvKernels kFconvScalar = {gemm_scalar, depthwise_scalar, max_scalar, pool_stage_scalar, affine_pool_scalar,
                                   500.0, nullptr};

}  // namespace onebit
