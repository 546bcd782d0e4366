// The ISA-independent bgemm driver: weight packing, cache blocking, threading.
//
// Work decomposition. The output is cut into tasks of (mc rows) x (nc weight tiles of
// kBgemmNR columns); tasks are handed to the thread pool (N-only tasks when M is at most
// one micro-kernel of rows: GEMV / small batch). Inside a task:
//   for each K block of kBgemmKC words        (K blocking; one block when M <= mr)
//     for each weight tile t of the task      (N blocking: the tile's K block, 32 KiB, in L1)
//       for each group of mr rows             (the activation rows stream from L1/L2)
//         micro-kernel(mr x 32, K block)      (register blocking: mr x 32 accumulators)
// Partial sums of K blocks live in the int32 output (bgemm) or in a thread-local scratch
// (threshold); the last block finalises them (and, for the threshold variant, the output
// stage turns the micro-tile into packed bits while it is still in L1).
#include "bgemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "threadpool.h"

namespace onebit {

// ---- PackedWeights ----

void PackedWeights::Free::operator()(std::uint64_t* p) const noexcept { std::free(p); }

namespace {

std::int64_t checked_words(std::int64_t n, std::int64_t words, std::int64_t k) {
  if (k < 1) throw std::invalid_argument("PackedWeights: k must be >= 1, got " + std::to_string(k));
  if (n < 0) throw std::invalid_argument("PackedWeights: n must be >= 0");
  if (words != (k + 63) / 64) {
    throw std::invalid_argument("PackedWeights: k=" + std::to_string(k) + " needs " +
                                std::to_string((k + 63) / 64) + " words per row, got " +
                                std::to_string(words));
  }
  return words;
}

}  // namespace

PackedWeights::PackedWeights(const std::uint64_t* w, std::int64_t n, std::int64_t words, std::int64_t k)
    : PackedWeights(KBitsTag{}, w, n, checked_words(n, words, k), k) {}

PackedWeights PackedWeights::with_k_bits(const std::uint64_t* w, std::int64_t n, std::int64_t words,
                                         std::int64_t k_bits) {
  if (n < 0 || words < 1 || k_bits < 1 || k_bits > 64 * words) {
    throw std::invalid_argument("PackedWeights: k_bits=" + std::to_string(k_bits) + " must be in 1.." +
                                std::to_string(64 * words) + " for " + std::to_string(words) +
                                " words per row (n=" + std::to_string(n) + ")");
  }
  return PackedWeights(KBitsTag{}, w, n, words, k_bits);
}

PackedWeights::PackedWeights(KBitsTag, const std::uint64_t* w, std::int64_t n, std::int64_t words, std::int64_t k)
    : n_(n), k_(k), words_(words) {
  tiles_ = (n + kBgemmNR - 1) / kBgemmNR;
  std::size_t bytes = nbytes();
  bytes = (std::max<std::size_t>(bytes, 64) + 63) / 64 * 64;
  auto* data = static_cast<std::uint64_t*>(std::aligned_alloc(64, bytes));
  if (data == nullptr) throw std::bad_alloc();
  data_.reset(data);
  std::memset(data, 0, bytes);
  for (std::int64_t row = 0; row < n; ++row) {
    const std::int64_t t = row / kBgemmNR, j = row % kBgemmNR;
    std::uint64_t* dst = data + t * words * kBgemmNR + j;
    const std::uint64_t* src = w + row * words;
    for (std::int64_t i = 0; i < words; ++i) dst[i * kBgemmNR] = src[i];
  }
}

void PackedWeights::unpack(std::uint64_t* w) const {
  for (std::int64_t row = 0; row < n_; ++row) {
    const std::uint64_t* src = tile(row / kBgemmNR) + row % kBgemmNR;
    for (std::int64_t i = 0; i < words_; ++i) w[row * words_ + i] = src[i * kBgemmNR];
  }
}

// ---- helpers ----

std::int64_t first_row_with_tail_bits(const std::uint64_t* rows, std::int64_t n, std::int64_t words,
                                      std::int64_t k) {
  if (k % 64 == 0 || words == 0) return -1;
  const std::uint64_t tail = ~std::uint64_t{0} << (k % 64);
  for (std::int64_t r = 0; r < n; ++r) {
    if (rows[r * words + words - 1] & tail) return r;
  }
  return -1;
}

const BgemmKernels& bgemm_kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kBgemmAvx512;
    case Isa::avx2: return kBgemmAvx2;
#if defined(__aarch64__)
    case Isa::neon: return kBgemmNeon;
#else
    case Isa::neon: break;  // not built here: parse_isa refuses it
#endif
    case Isa::scalar: break;
  }
  return kBgemmScalar;
}

namespace {

// Fewer threads than asked for when there is too little work: each thread must get at
// least this much (estimated, single-thread) work. bgemm and bgemm_threshold pass their
// estimate to parallel_run, which shares jobs under ~100 us only with pool workers that
// are already awake (no futex wake-up on the caller's time, nobody waited for), so a
// thread's share can be small: kMinMicrosPerAwakeThread. bgemm_threads_for() is for
// callers that do not pass an estimate (every job may wake workers: a few microseconds
// each, and a worker whose core is busy may not come at all): no second thread below
// ~50 us there.
constexpr double kMinMicrosPerAwakeThread = 4.0;  // a 1 MiB GEMV (~10 us) gains 2x on 2 threads
constexpr double kMinMicrosPerThread = 25.0;

// Rough single-thread speed in word pairs (XOR + popcount of 64 bits) per microsecond, by
// ISA (measured on a Zen 5 core; weights in L2/L3): gemv = false when the micro-kernel is
// compute bound (GEMM: each weight tile reused across row groups); gemv = true for M = 1,
// where it streams the weights once and is bound by bandwidth (with M <= mr rows at a
// time, the weights streamed per microsecond stay about the same). Only thread counts
// depend on these; slower machines err on the side of fewer threads.
double pairs_per_us(const BgemmKernels* kern, bool gemv) {
  if (kern == &kBgemmAvx512) return gemv ? 12000.0 : 40000.0;
  if (kern == &kBgemmAvx2) return gemv ? 4500.0 : 8000.0;
  return 600.0;  // scalar
}

struct Job {
  const BgemmKernels* kern;
  Isa isa;
  const std::uint64_t* a;
  std::int64_t lda;  // row stride of a (words for bgemm)
  std::int64_t m, n, words, tiles;
  std::int32_t k_bits;
  const PackedWeights* w;
  std::int64_t mc, nc, n_blocks, kc;  // task shape and K block
  // bgemm: int32 output; row stride ldc, column 0 of c is the first column of tile c_t0
  std::int32_t* c;
  std::int64_t ldc, c_t0;
  // threshold: packed output
  const std::int32_t* thresh;
  const std::uint32_t* neg;  // sign bits, one 32-bit half per tile
  std::uint32_t* out;        // rows of 2 * out_words halves
  std::int64_t out_halves;
  // float: the stage of each task's int32 block (in its thread's part of scratch) into fy
  const FloatStage* stage;
  float* fy;
  std::int32_t* scratch;  // threads x mc x nc * kBgemmNR
};

// Rows [m0, m1) x weight tiles [t0, t1) of the job, on the calling thread.
void compute_block(const Job& j, std::int64_t m0, std::int64_t m1, std::int64_t t0, std::int64_t t1) {
  const std::int64_t mr = j.kern->mr;
  const BgemmUkernelFn ukernel = j.kern->ukernel;
  const bool threshold = j.out != nullptr;

  // Threshold: partial sums of the task's region (only when K is blocked), else one
  // micro-tile, in a buffer that stays with the thread.
  const bool multi_block = j.kc < j.words;
  std::int32_t* scratch = nullptr;
  std::int64_t lds = 0;
  if (threshold) {
    thread_local std::vector<std::int32_t> buffer;
    lds = multi_block ? (t1 - t0) * kBgemmNR : kBgemmNR;
    const std::size_t need = static_cast<std::size_t>((multi_block ? (m1 - m0) : mr) * lds);
    if (buffer.size() < need) buffer.resize(need);
    scratch = buffer.data();
  }

  for (std::int64_t k0 = 0; k0 < j.words; k0 += j.kc) {
    const std::int64_t kc = std::min(j.kc, j.words - k0);
    const unsigned flags = (k0 == 0 ? kBgemmFirst : 0u) | (k0 + kc == j.words ? kBgemmLast : 0u);
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::uint64_t* wt = j.w->tile(t) + k0 * kBgemmNR;
      const std::int64_t nr = std::min(kBgemmNR, j.n - t * kBgemmNR);
      for (std::int64_t m = m0; m < m1; m += mr) {
        const std::int64_t rows = std::min(mr, m1 - m);
        const std::uint64_t* a = j.a + m * j.lda + k0;
        if (!threshold) {
          ukernel(rows, nr, kc, a, j.lda, wt, j.c + m * j.ldc + (t - j.c_t0) * kBgemmNR, j.ldc, j.k_bits,
                  flags);
          continue;
        }
        std::int32_t* dst = multi_block ? scratch + (m - m0) * lds + (t - t0) * kBgemmNR : scratch;
        ukernel(rows, nr, kc, a, j.lda, wt, dst, lds, j.k_bits, flags);
        if (flags & kBgemmLast) {
          j.kern->threshold(rows, nr, dst, lds, j.thresh + t * kBgemmNR, j.neg[t],
                            j.out + m * j.out_halves + t, j.out_halves);
        }
      }
    }
  }
}

void run_task(void* ctx, std::int64_t task, int thread) {
  const Job& j = *static_cast<const Job*>(ctx);
  const std::int64_t m0 = (task / j.n_blocks) * j.mc, m1 = std::min(j.m, m0 + j.mc);
  const std::int64_t t0 = (task % j.n_blocks) * j.nc, t1 = std::min(j.tiles, t0 + j.nc);
  if (j.stage == nullptr) {
    compute_block(j, m0, m1, t0, t1);
    return;
  }
  // Float output: the block's int32 sums into the thread's scratch, then the stage.
  const std::int64_t c0 = t0 * kBgemmNR, c1 = std::min(j.n, t1 * kBgemmNR);
  Job block = j;
  block.a = j.a + m0 * j.lda;
  block.m = m1 - m0;
  block.c = j.scratch + thread * j.mc * j.nc * kBgemmNR;
  block.ldc = (t1 - t0) * kBgemmNR;
  block.c_t0 = t0;
  compute_block(block, 0, m1 - m0, t0, t1);
  apply_float_stage(*j.stage, block.c, block.ldc, m0, m1 - m0, c0, c1, j.fy, j.n, j.isa);
}

// Returns the thread count; *micros: the estimated single-thread time.
int plan(Job& j, int num_threads, double* micros_out) {
  const std::int64_t mr = j.kern->mr;
  // Estimated single-thread time: compute bound, or (M <= mr) streaming the weights once.
  const double weight_words = static_cast<double>(j.n) * static_cast<double>(j.words);
  double micros = static_cast<double>(j.m) * weight_words / pairs_per_us(j.kern, false);
  if (j.m <= mr) micros = std::max(micros, weight_words / pairs_per_us(j.kern, true));
  *micros_out = micros;
  int threads = static_cast<int>(std::clamp<double>(micros / kMinMicrosPerAwakeThread, 1.0, num_threads));
  if (j.m <= mr) {
    // GEMV / small batch: one row block, no K blocking (no reuse across row groups to
    // gain), split N only. Each task streams nc whole tiles of contiguous weights.
    j.mc = std::max<std::int64_t>(j.m, 1);
    j.kc = std::max<std::int64_t>(j.words, 1);
    j.nc = std::max<std::int64_t>(1, (j.tiles + 4 * threads - 1) / (4 * threads));
  } else {
    j.kc = kBgemmKC;
    j.mc = std::min((j.m + mr - 1) / mr * mr, 16 * mr);
    j.nc = std::min<std::int64_t>(j.tiles, 16);
    auto tasks = [&] { return ((j.m + j.mc - 1) / j.mc) * ((j.tiles + j.nc - 1) / j.nc); };
    // Enough tasks for the threads to balance (the machine may be shared).
    while (threads > 1 && tasks() < 4 * threads && j.nc > 1) j.nc = (j.nc + 1) / 2;
    while (threads > 1 && tasks() < 2 * threads && j.mc > mr) j.mc = (j.mc / 2 + mr - 1) / mr * mr;
  }
  j.nc = std::max<std::int64_t>(j.nc, 1);
  j.n_blocks = (j.tiles + j.nc - 1) / j.nc;
  const std::int64_t tasks = ((j.m + j.mc - 1) / j.mc) * j.n_blocks;
  return static_cast<int>(std::min<std::int64_t>(threads, tasks));
}

Job make_job(const std::uint64_t* a, std::int64_t m, const PackedWeights& w, Isa isa) {
  Job j{};
  j.kern = &bgemm_kernels(isa);
  j.isa = isa;
  if (j.kern->ukernel == nullptr) {
    throw std::invalid_argument(std::string("bgemm: ISA ") + isa_name(isa) + " is not compiled in");
  }
  j.a = a;
  j.lda = w.words();
  j.m = m;
  j.n = w.n();
  j.ldc = w.n();
  j.words = w.words();
  j.tiles = w.tiles();
  j.k_bits = static_cast<std::int32_t>(w.k());
  j.w = &w;
  return j;
}

}  // namespace

void bgemm(const std::uint64_t* a, std::int64_t m, const PackedWeights& w, std::int32_t* c,
           int num_threads, Isa isa) {
  Job j = make_job(a, m, w, isa);
  if (m == 0 || w.n() == 0) return;
  j.c = c;
  double micros = 0.0;
  const int threads = plan(j, num_threads, &micros);
  parallel_run(threads, ((m + j.mc - 1) / j.mc) * j.n_blocks, run_task, &j, micros);
}

int bgemm_threads_for(const BgemmKernels& kern, double pairs, int num_threads, double* micros) {
  const double us = pairs / pairs_per_us(&kern, false);
  if (micros != nullptr) *micros = us;
  const double per_thread = micros != nullptr ? kMinMicrosPerAwakeThread : kMinMicrosPerThread;
  return static_cast<int>(std::clamp<double>(us / per_thread, 1.0, std::max(num_threads, 1)));
}

void bgemm_serial(const BgemmKernels& kern, const std::uint64_t* a, std::int64_t lda, std::int64_t m,
                  const PackedWeights& w, std::int64_t t0, std::int64_t t1, std::int32_t* c,
                  std::int64_t ldc) {
  t1 = std::min(t1, w.tiles());
  if (m <= 0 || t0 >= t1) return;
  Job j{};
  j.kern = &kern;
  j.a = a;
  j.lda = lda;
  j.m = m;
  j.n = w.n();
  j.words = w.words();
  j.tiles = w.tiles();
  j.k_bits = static_cast<std::int32_t>(w.k());
  j.w = &w;
  j.kc = m <= kern.mr ? std::max<std::int64_t>(j.words, 1) : kBgemmKC;
  j.c = c;
  j.ldc = ldc;
  j.c_t0 = t0;
  compute_block(j, 0, m, t0, t1);
}

void bgemm_float(const std::uint64_t* a, std::int64_t m, const PackedWeights& w, const FloatStage& stage,
                 float* out, int num_threads, Isa isa) {
  if (stage.signs != nullptr) throw std::invalid_argument("bgemm_float: the stage's signs are not supported here");
  Job j = make_job(a, m, w, isa);
  if (m == 0 || w.n() == 0) return;
  j.stage = &stage;
  j.fy = out;
  double micros = 0.0;
  const int threads = plan(j, num_threads, &micros);
  // Per call rather than thread_local: a thread_local with a destructor on the caller's
  // thread (a Python thread) is freed by glibc at thread exit in a way ThreadSanitizer
  // cannot order, which it reported as a race.
  std::vector<std::int32_t> scratch(static_cast<std::size_t>(threads * j.mc * j.nc * kBgemmNR));
  j.scratch = scratch.data();
  parallel_run(threads, ((m + j.mc - 1) / j.mc) * j.n_blocks, run_task, &j, micros);
}

void bgemm_threshold(const std::uint64_t* a, std::int64_t m, const PackedWeights& w,
                     const std::int32_t* thresh, const std::int8_t* sign, std::uint64_t* out,
                     int num_threads, Isa isa) {
  Job j = make_job(a, m, w, isa);
  const std::int64_t out_words = (w.n() + 63) / 64;
  if (m > 0 && out_words > 0) std::memset(out, 0, static_cast<std::size_t>(m * out_words) * 8);
  if (m == 0 || w.n() == 0) return;
  // Sign bits per tile (bit j of neg[t] set where sign[t * 32 + j] < 0).
  std::vector<std::uint32_t> neg(static_cast<std::size_t>(w.tiles()), 0u);
  for (std::int64_t i = 0; i < w.n(); ++i) {
    if (sign[i] < 0) neg[static_cast<std::size_t>(i / 32)] |= 1u << (i % 32);
  }
  j.thresh = thresh;
  j.neg = neg.data();
  // uint64 output word q = halves 2q (bits 0..31) and 2q + 1 (bits 32..63): little endian.
  static_assert(kBgemmNR == 32, "the threshold stage writes one 32-bit half per tile");
  j.out = reinterpret_cast<std::uint32_t*>(out);
  j.out_halves = 2 * out_words;
  double micros = 0.0;
  const int threads = plan(j, num_threads, &micros);
  parallel_run(threads, ((m + j.mc - 1) / j.mc) * j.n_blocks, run_task, &j, micros);
}

}  // namespace onebit
