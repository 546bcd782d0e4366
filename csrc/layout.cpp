// NCHW -> NHWC (layout.h).
#include "layout.h"

#include <algorithm>

#include "threadpool.h"

namespace onebit {

namespace {

// Channels per block of the transposing loop: its c input rows stay in L1 while the
// output row is written in order.
constexpr std::int64_t kChannelBlock = 16;
// Rough single-thread speed in floats moved per microsecond, for parallel_run's estimate.
constexpr double kFloatsPerMicro = 2000.0;

struct Job {
  const float* x;
  float* y;
  std::int64_t c, h, w;
};

void rows_task(void* ctx, std::int64_t r, int /*thread*/) {
  const Job& j = *static_cast<const Job*>(ctx);
  const std::int64_t b = r / j.h, i = r % j.h;
  const float* src = j.x + (b * j.c * j.h + i) * j.w;  // channel 0 of row i
  float* dst = j.y + r * j.w * j.c;
  if (j.c <= kChannelBlock) {
    // An image's few channels: one pass per channel, contiguous loads, strided stores
    // into the output row (in L1).
    for (std::int64_t ch = 0; ch < j.c; ++ch) {
      const float* s = src + ch * j.h * j.w;
      for (std::int64_t col = 0; col < j.w; ++col) dst[col * j.c + ch] = s[col];
    }
    return;
  }
  for (std::int64_t c0 = 0; c0 < j.c; c0 += kChannelBlock) {
    const std::int64_t c1 = std::min(j.c, c0 + kChannelBlock);
    for (std::int64_t col = 0; col < j.w; ++col) {
      for (std::int64_t ch = c0; ch < c1; ++ch) dst[col * j.c + ch] = src[ch * j.h * j.w + col];
    }
  }
}

}  // namespace

void nchw_to_nhwc(const float* x, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, float* y,
                  int num_threads) {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return;
  Job job{x, y, c, h, w};
  const double micros = static_cast<double>(n * c * h * w) / kFloatsPerMicro;
  // Under ~20 us of moving the second thread costs more than it saves.
  const int threads = micros < 20.0 ? 1 : num_threads;
  parallel_run(threads, n * h, rows_task, &job, micros);
}

}  // namespace onebit
