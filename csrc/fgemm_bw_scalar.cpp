// Scalar float x binary GEMM: the reference implementation, which is also the
// specification (see fgemm_bw.h). Plain loops with double accumulators, portable to any
// architecture; the SIMD variants must agree with it within the bound in fgemm_bw.h.
#include <algorithm>
#include <cstdint>

#include "fgemm_bw.h"

namespace onebit {

void fgemm_bw_reference(const float* x, std::int64_t m, const std::uint64_t* w, std::int64_t n, std::int64_t k,
                        float* y) {
  const std::int64_t words = (k + 63) / 64;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (std::int64_t q = 0; q < k; ++q) {
        const double v = x[i * k + q];
        acc += ((w[j * words + q / 64] >> (q % 64)) & 1u) ? -v : v;
      }
      y[i * n + j] = static_cast<float>(acc);
    }
  }
}

namespace {

// The same sums, read from the repacked panels (so the scalar ISA exercises the layout).
void run_scalar(const float* x, const float* /*t*/, std::int64_t m, const BinaryWeightsF32& w, std::int64_t p0,
                std::int64_t p1, float* y) {
  const std::int64_t k = w.k(), n = w.n();
  double acc[kFgemmBwPanelRows];
  for (std::int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    for (std::int64_t p = p0; p < p1; ++p) {
      const std::uint32_t* wp = w.panel(p);
      const std::int64_t cols = std::min(kFgemmBwPanelRows, n - p * kFgemmBwPanelRows);
      for (std::int64_t b = 0; b < cols; ++b) acc[b] = 0.0;
      for (std::int64_t q = 0; q < k; ++q) {
        const double v = xi[q];
        const std::uint32_t* col = wp + (q / 32) * kFgemmBwPanelRows;
        for (std::int64_t b = 0; b < cols; ++b) acc[b] += ((col[b] >> (q % 32)) & 1u) ? -v : v;
      }
      for (std::int64_t b = 0; b < cols; ++b) y[i * n + p * kFgemmBwPanelRows + b] = static_cast<float>(acc[b]);
    }
  }
}

}  // namespace

const FgemmBwKernels kFgemmBwScalar = {nullptr, run_scalar, 4000.0};

}  // namespace onebit
