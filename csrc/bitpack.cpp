// Scalar bit packing (the reference) and the dispatching, threaded driver.
#include "bitpack.h"

#include <algorithm>

#include "threadpool.h"

namespace onebit {

void pack_rows_f32_scalar(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out) {
  const std::int64_t words = words_for(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    std::uint64_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      const std::int64_t begin = w * 64;
      const std::int64_t n = cols - begin < 64 ? cols - begin : 64;
      std::uint64_t word = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        word |= static_cast<std::uint64_t>(row[begin + j] < 0.0f) << j;
      }
      dst[w] = word;
    }
  }
}

void unpack_rows_f32_scalar(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out) {
  const std::int64_t words = words_for(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t* src = packed + r * words;
    float* row = out + r * cols;
    for (std::int64_t j = 0; j < cols; ++j) {
      row[j] = ((src[j / 64] >> (j % 64)) & 1u) ? -1.0f : 1.0f;
    }
  }
}

void pack_affine_rows_f32_scalar(const float* x, std::int64_t rows, std::int64_t cols, std::int64_t ldx,
                                 const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                                 std::int64_t ldo) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * ldx;
    std::uint64_t* dst = out + r * ldo;
    for (std::int64_t w = 0; w < words_for(cols); ++w) {
      const std::int64_t begin = w * 64;
      const std::int64_t n = cols - begin < 64 ? cols - begin : 64;
      std::uint64_t word = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        word |= static_cast<std::uint64_t>(affine_sign_bit(row, scale, bias, shift, begin + j)) << j;
      }
      dst[w] = word;
    }
  }
}

const BitpackKernels kBitpackScalar = {pack_rows_f32_scalar, unpack_rows_f32_scalar, pack_affine_rows_f32_scalar};

const BitpackKernels& bitpack_kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kBitpackAvx512.pack ? kBitpackAvx512 : kBitpackScalar;
    case Isa::avx2: return kBitpackAvx2.pack ? kBitpackAvx2 : kBitpackScalar;
#if defined(__aarch64__)
    case Isa::neon: return kBitpackNeon.pack ? kBitpackNeon : kBitpackScalar;
#else
    case Isa::neon: break;  // not built here: parse_isa refuses it
#endif
    case Isa::scalar: break;
  }
  return kBitpackScalar;
}

namespace {

// Fewer threads than asked for when there is too little work: each thread must get at
// least this much (estimated, single-thread) work. The estimate goes to parallel_run,
// which shares jobs under ~100 us only with pool workers that are already awake (see
// threadpool.h and bgemm.cpp), so a short pack costs no wake-up. It is short: between
// threaded steps of a model, a pack run on one thread read the half of its input that the
// other core had just written, from that core's cache (QuickNet's first sign, 56x56x32:
// 7.8 us alone, 17 us so on 2 threads; 10 us per thread kept it on one).
constexpr double kMinMicrosPerThread = 2.0;

// Rough single-thread speed in floats per microsecond (measured on a Zen 5 core), only
// used for the thread count.
double floats_per_us(const BitpackKernels* kern, bool pack) {
  if (kern == &kBitpackAvx512) return 25000.0;
  if (kern == &kBitpackAvx2) return pack ? 22000.0 : 16000.0;
  return pack ? 3000.0 : 250.0;  // scalar
}

struct PackJob {
  const BitpackKernels* kern;
  const float* x;
  const std::uint64_t* packed;
  std::uint64_t* out_words;
  float* out_floats;
  std::int64_t rows, cols, words, rows_per_task;
};

void pack_task(void* ctx, std::int64_t task, int) {
  const PackJob& j = *static_cast<const PackJob*>(ctx);
  const std::int64_t r0 = task * j.rows_per_task, r1 = std::min(j.rows, r0 + j.rows_per_task);
  j.kern->pack(j.x + r0 * j.cols, r1 - r0, j.cols, j.out_words + r0 * j.words);
}

void unpack_task(void* ctx, std::int64_t task, int) {
  const PackJob& j = *static_cast<const PackJob*>(ctx);
  const std::int64_t r0 = task * j.rows_per_task, r1 = std::min(j.rows, r0 + j.rows_per_task);
  j.kern->unpack(j.packed + r0 * j.words, r1 - r0, j.cols, j.out_floats + r0 * j.cols);
}

// Returns the thread count; *micros: the estimated single-thread time.
std::int64_t split(PackJob& j, int num_threads, bool pack, double* micros_out) {
  const double micros = static_cast<double>(j.rows) * static_cast<double>(std::max<std::int64_t>(j.cols, 1)) /
                        floats_per_us(j.kern, pack);
  *micros_out = micros;
  const auto threads = static_cast<std::int64_t>(std::clamp<double>(micros / kMinMicrosPerThread, 1.0, num_threads));
  const std::int64_t tasks = std::min<std::int64_t>(j.rows, threads == 1 ? 1 : 4 * threads);
  j.rows_per_task = (j.rows + tasks - 1) / std::max<std::int64_t>(tasks, 1);
  return threads;
}

}  // namespace

void pack_rows_f32(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out,
                   int num_threads, Isa isa) {
  if (rows <= 0 || cols <= 0) return;
  PackJob j{&bitpack_kernels(isa), x, nullptr, out, nullptr, rows, cols, words_for(cols), rows};
  double micros = 0.0;
  const std::int64_t threads = split(j, num_threads, true, &micros);
  parallel_run(static_cast<int>(threads), (rows + j.rows_per_task - 1) / j.rows_per_task, pack_task, &j, micros);
}

void unpack_rows_f32(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out,
                     int num_threads, Isa isa) {
  if (rows <= 0 || cols <= 0) return;
  PackJob j{&bitpack_kernels(isa), nullptr, packed, nullptr, out, rows, cols, words_for(cols), rows};
  double micros = 0.0;
  const std::int64_t threads = split(j, num_threads, false, &micros);
  parallel_run(static_cast<int>(threads), (rows + j.rows_per_task - 1) / j.rows_per_task, unpack_task, &j, micros);
}

}  // namespace onebit
