// Layout changes of float tensors between PyTorch's NCHW and the kernels' NHWC.
#pragma once

#include <cstdint>

namespace onebit {

// y[b, i, j, ch] = x[b, ch, i, j] for x (n, c, h, w) float32, y (n, h, w, c); threaded over
// the n * h output rows (a model's first step: 3 x 224 x 224 is 0.6 MB to move).
void nchw_to_nhwc(const float* x, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, float* y,
                  int num_threads);

}  // namespace onebit
