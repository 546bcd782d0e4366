// Binary max-pool on packed NHWC words (see bconv.h for the specification).
//
// Per output pixel: AND and OR of the window's words (padded positions skipped), then
// out = (and & mask) | (or & ~mask). The word loops are plain uint64 loops that the
// compiler vectorises; the body is one always_inline function instantiated by three
// TU-local wrappers, the baseline one and two with __attribute__((target(...))), so the
// AVX2/AVX-512 copies exist only inside functions that are called when dispatch chose
// that ISA (an always_inline callee compiled into a target caller takes the caller's
// ISA; no out-of-line copy is emitted, and one would be baseline code). Bitwise, so every
// ISA is trivially bit-exact with the baseline one.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bconv.h"
#include "threadpool.h"

namespace onebit {

namespace {

constexpr std::int64_t kMaxParam = std::int64_t{1} << 30;
// Minimum word operations (loads of a window word) per thread.
constexpr std::int64_t kMinWordOpsPerThread = std::int64_t{1} << 17;

std::string pair_str(std::int64_t a, std::int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

struct PoolJob {
  const std::uint64_t* x;
  std::int64_t h, w, words, oh, ow, kh, kw, sh, sw, ph, pw;
  const std::uint64_t* mask;
  std::uint64_t* out;
  std::int64_t rows_per_task, total_rows;  // output rows (n, oy)
};

// Output rows [r0, r1) of the job; acc: 2 * words scratch. W > 0: the job has exactly W
// words per pixel, a compile-time count, so the word loops unroll into a few vector
// operations (a 128-channel pool ran 4x faster than with the generic loops).
template <int W>
__attribute__((always_inline)) inline void pool_rows(const PoolJob& j, std::int64_t r0, std::int64_t r1,
                                                     std::uint64_t* __restrict acc_and,
                                                     std::uint64_t* __restrict acc_or) {
  const std::int64_t words = W > 0 ? W : j.words;
  for (std::int64_t r = r0; r < r1; ++r) {
    const std::int64_t b = r / j.oh, oy = r % j.oh;
    const std::int64_t y0 = std::max<std::int64_t>(oy * j.sh - j.ph, 0);
    const std::int64_t y1 = std::min(oy * j.sh - j.ph + j.kh, j.h);
    const std::uint64_t* img = j.x + b * j.h * j.w * words;
    std::uint64_t* __restrict dst = j.out + r * j.ow * words;
    for (std::int64_t ox = 0; ox < j.ow; ++ox, dst += words) {
      const std::int64_t x0 = std::max<std::int64_t>(ox * j.sw - j.pw, 0);
      const std::int64_t x1 = std::min(ox * j.sw - j.pw + j.kw, j.w);
      for (std::int64_t q = 0; q < words; ++q) {
        acc_and[q] = ~std::uint64_t{0};
        acc_or[q] = 0;
      }
      for (std::int64_t iy = y0; iy < y1; ++iy) {
        for (std::int64_t ix = x0; ix < x1; ++ix) {
          const std::uint64_t* __restrict s = img + (iy * j.w + ix) * words;
          for (std::int64_t q = 0; q < words; ++q) {
            acc_and[q] &= s[q];
            acc_or[q] |= s[q];
          }
        }
      }
      const std::uint64_t* __restrict m = j.mask;
      for (std::int64_t q = 0; q < words; ++q) dst[q] = (acc_and[q] & m[q]) | (acc_or[q] & ~m[q]);
    }
  }
}

__attribute__((always_inline)) inline void pool_any(const PoolJob& j, std::int64_t r0, std::int64_t r1,
                                                    std::uint64_t* acc_and, std::uint64_t* acc_or) {
  switch (j.words) {
    case 1: pool_rows<1>(j, r0, r1, acc_and, acc_or); break;
    case 2: pool_rows<2>(j, r0, r1, acc_and, acc_or); break;
    case 4: pool_rows<4>(j, r0, r1, acc_and, acc_or); break;
    case 8: pool_rows<8>(j, r0, r1, acc_and, acc_or); break;
    default: pool_rows<0>(j, r0, r1, acc_and, acc_or); break;
  }
}

using PoolFn = void (*)(const PoolJob&, std::int64_t, std::int64_t, std::uint64_t*, std::uint64_t*);

void pool_baseline(const PoolJob& j, std::int64_t r0, std::int64_t r1, std::uint64_t* a, std::uint64_t* o) {
  pool_any(j, r0, r1, a, o);
}

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) void pool_avx2(const PoolJob& j, std::int64_t r0, std::int64_t r1, std::uint64_t* a,
                                               std::uint64_t* o) {
  pool_any(j, r0, r1, a, o);
}
__attribute__((target("avx512f,avx512bw"))) void pool_avx512(const PoolJob& j, std::int64_t r0, std::int64_t r1,
                                                             std::uint64_t* a, std::uint64_t* o) {
  pool_any(j, r0, r1, a, o);
}
#else
void pool_avx2(const PoolJob& j, std::int64_t r0, std::int64_t r1, std::uint64_t* a, std::uint64_t* o) {
  pool_any(j, r0, r1, a, o);
}
void pool_avx512(const PoolJob& j, std::int64_t r0, std::int64_t r1, std::uint64_t* a, std::uint64_t* o) {
  pool_any(j, r0, r1, a, o);
}
#endif

PoolFn pool_fn(Isa isa) { return isa == Isa::avx512 ? pool_avx512 : isa == Isa::avx2 ? pool_avx2 : pool_baseline; }

void run_rows(PoolFn fn, const PoolJob& job, std::int64_t r0, std::int64_t r1) {
  thread_local std::vector<std::uint64_t> acc;
  const std::size_t need = static_cast<std::size_t>(2 * job.words);
  if (acc.size() < need) acc.resize(need);
  fn(job, r0, r1, acc.data(), acc.data() + job.words);
}

struct PoolRun {
  PoolJob job;
  PoolFn fn;
  static void task(void* ctx, std::int64_t t, int /*thread*/) {
    const PoolRun& r = *static_cast<const PoolRun*>(ctx);
    const std::int64_t r0 = t * r.job.rows_per_task, r1 = std::min(r.job.total_rows, r0 + r.job.rows_per_task);
    run_rows(r.fn, r.job, r0, r1);
  }
};

void check_pool_params(std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                       std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> padding_end) {
  const std::string fn = "bmaxpool2d: ";
  for (int i = 0; i < 2; ++i) {
    if (kernel[i] < 1 || kernel[i] > kMaxParam) {
      throw std::invalid_argument(fn + "kernel must be >= 1, got " + pair_str(kernel[0], kernel[1]));
    }
    if (stride[i] < 1 || stride[i] > kMaxParam) {
      throw std::invalid_argument(fn + "stride must be >= 1, got " + pair_str(stride[0], stride[1]));
    }
    if (padding[i] < 0 || 2 * padding[i] > kernel[i]) {
      throw std::invalid_argument(fn + "padding must be in 0..kernel/2 (as in PyTorch, so every window "
                                  "has a pixel inside the image), got padding " +
                                  pair_str(padding[0], padding[1]) + " for kernel " +
                                  pair_str(kernel[0], kernel[1]));
    }
    if (padding_end[i] < 0 || 2 * padding_end[i] > kernel[i]) {
      throw std::invalid_argument(fn + "padding_end must be in 0..kernel/2 (so every window has a pixel "
                                  "inside the image), got padding_end " +
                                  pair_str(padding_end[0], padding_end[1]) + " for kernel " +
                                  pair_str(kernel[0], kernel[1]));
    }
  }
}

// padding_end {-1, -1} (the default): the same as padding.
std::array<std::int64_t, 2> end_or(std::array<std::int64_t, 2> padding_end, std::array<std::int64_t, 2> padding) {
  return padding_end[0] < 0 && padding_end[1] < 0 ? padding : padding_end;
}

}  // namespace

std::array<std::int64_t, 2> bmaxpool2d_output_shape(std::int64_t h, std::int64_t w,
                                                    std::array<std::int64_t, 2> kernel,
                                                    std::array<std::int64_t, 2> stride,
                                                    std::array<std::int64_t, 2> padding,
                                                    std::array<std::int64_t, 2> padding_end) {
  padding_end = end_or(padding_end, padding);
  check_pool_params(kernel, stride, padding, padding_end);
  if (h < 1 || w < 1 || h > kMaxParam || w > kMaxParam) {
    throw std::invalid_argument("bmaxpool2d: input size must be in 1..2^30, got " + pair_str(h, w));
  }
  const std::int64_t oh = h + padding[0] + padding_end[0] - kernel[0];
  const std::int64_t ow = w + padding[1] + padding_end[1] - kernel[1];
  if (oh < 0 || ow < 0) {
    throw std::invalid_argument("bmaxpool2d: input " + pair_str(h, w) + " with padding " +
                                pair_str(padding[0], padding[1]) + " and padding_end " +
                                pair_str(padding_end[0], padding_end[1]) + " is smaller than the kernel " +
                                pair_str(kernel[0], kernel[1]) + " (output size would be < 1)");
  }
  return {oh / stride[0] + 1, ow / stride[1] + 1};
}

void bmaxpool2d(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t channels,
                std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                std::array<std::int64_t, 2> padding, const std::uint64_t* and_mask, std::uint64_t* out,
                int num_threads, Isa isa, std::array<std::int64_t, 2> padding_end) {
  if (channels < 1) throw std::invalid_argument("bmaxpool2d: channels must be >= 1");
  if (n < 0) throw std::invalid_argument("bmaxpool2d: batch must be >= 0");
  // The window loops clip at the image's end, so padding_end only sets the output size.
  const auto shape = bmaxpool2d_output_shape(h, w, kernel, stride, padding, padding_end);
  PoolRun r{};
  r.job = PoolJob{x,         h,         w,          words_for(channels), shape[0], shape[1], kernel[0], kernel[1],
                  stride[0], stride[1], padding[0], padding[1],          and_mask, out,      1,         n * shape[0]};
  r.fn = pool_fn(isa);
  if (r.job.total_rows == 0) return;
  const std::int64_t ops = r.job.total_rows * r.job.ow * r.job.words * kernel[0] * kernel[1];
  const int threads = static_cast<int>(std::clamp<std::int64_t>(ops / kMinWordOpsPerThread, 1, num_threads));
  // About 4 tasks per thread.
  r.job.rows_per_task = std::max<std::int64_t>(1, r.job.total_rows / (4 * threads));
  const std::int64_t tasks = (r.job.total_rows + r.job.rows_per_task - 1) / r.job.rows_per_task;
  parallel_run(static_cast<int>(std::min<std::int64_t>(threads, tasks)), tasks, PoolRun::task, &r);
}

void bmaxpool2d_band(const std::uint64_t* band, std::int64_t band_h, std::int64_t w, std::int64_t words,
                     std::int64_t rows, std::int64_t ow, std::array<std::int64_t, 2> kernel,
                     std::array<std::int64_t, 2> stride, std::int64_t top, std::int64_t left,
                     const std::uint64_t* and_mask, std::uint64_t* out, Isa isa) {
  if (rows <= 0) return;
  const PoolJob job{band,      band_h,    w,   words, rows,     ow,  kernel[0], kernel[1],
                    stride[0], stride[1], top, left,  and_mask, out, rows,      rows};
  run_rows(pool_fn(isa), job, 0, rows);
}

}  // namespace onebit
