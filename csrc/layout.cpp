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

// An image's C (1-4) channels: the output row written in order, C loads per pixel (the
// compiler unrolls the channel loop; a store stream, not C strided passes).
template <int C>
void small_row(const float* src, std::int64_t plane, std::int64_t w, float* __restrict dst) {
  const float* __restrict s[C];
  for (int ch = 0; ch < C; ++ch) s[ch] = src + ch * plane;
  for (std::int64_t col = 0; col < w; ++col) {
#pragma GCC unroll 4
    for (int ch = 0; ch < C; ++ch) dst[col * C + ch] = s[ch][col];
  }
}

void rows_task(void* ctx, std::int64_t r, int /*thread*/) {
  const Job& j = *static_cast<const Job*>(ctx);
  const std::int64_t b = r / j.h, i = r % j.h;
  const float* src = j.x + (b * j.c * j.h + i) * j.w;  // channel 0 of row i
  float* dst = j.y + r * j.w * j.c;
  const std::int64_t plane = j.h * j.w;
  switch (j.c) {
    case 1: small_row<1>(src, plane, j.w, dst); return;
    case 2: small_row<2>(src, plane, j.w, dst); return;
    case 3: small_row<3>(src, plane, j.w, dst); return;
    case 4: small_row<4>(src, plane, j.w, dst); return;
    default: break;
  }
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
