// The ISA-independent part of the float x binary GEMM (fgemm_bw.h): weight repacking and
// the driver.
//
// Work decomposition: rows of x are taken in chunks whose tables fit in ~1 MiB (one chunk
// for small batches); the calling thread builds the chunk's tables (a small fraction of
// the work: 2 K operations per row against N K / 32 for the GEMM), then the chunk's
// outputs are cut into tasks of consecutive panels (16 columns) and handed to the pool,
// with rows split as well when N has too few panels for the threads. Every output is
// computed by the same instruction sequence whatever the task shape, so one ISA gives
// the same bits for any thread count and any batch.
#include "fgemm_bw.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "threadpool.h"

namespace onebit {

// ---- BinaryWeightsF32 ----

void BinaryWeightsF32::Free::operator()(std::uint32_t* p) const noexcept { std::free(p); }

BinaryWeightsF32::BinaryWeightsF32(const std::uint64_t* w, std::int64_t n, std::int64_t k) : n_(n), k_(k) {
  if (k < 1) throw std::invalid_argument("BinaryWeightsF32: k must be >= 1, got " + std::to_string(k));
  if (n < 0) throw std::invalid_argument("BinaryWeightsF32: n must be >= 0, got " + std::to_string(n));
  panels_ = (n + kFgemmBwPanelRows - 1) / kFgemmBwPanelRows;
  dwords_ = (k + 31) / 32;
  const std::size_t bytes = (std::max<std::size_t>(nbytes(), 64) + 63) / 64 * 64;
  auto* data = static_cast<std::uint32_t*>(std::aligned_alloc(64, bytes));
  if (data == nullptr) throw std::bad_alloc();
  data_.reset(data);
  std::memset(data, 0, bytes);
  const std::int64_t words = (k + 63) / 64;
  for (std::int64_t row = 0; row < n; ++row) {
    std::uint32_t* dst = data + (row / kFgemmBwPanelRows) * dwords_ * kFgemmBwPanelRows + row % kFgemmBwPanelRows;
    const std::uint64_t* src = w + row * words;
    for (std::int64_t q = 0; q < dwords_; ++q) {
      dst[q * kFgemmBwPanelRows] = static_cast<std::uint32_t>(src[q / 2] >> (32 * (q % 2)));
    }
  }
}

void BinaryWeightsF32::unpack(std::uint64_t* w) const {
  const std::int64_t words = (k_ + 63) / 64;
  std::memset(w, 0, static_cast<std::size_t>(n_ * words) * 8);
  for (std::int64_t row = 0; row < n_; ++row) {
    const std::uint32_t* src = panel(row / kFgemmBwPanelRows) + row % kFgemmBwPanelRows;
    for (std::int64_t q = 0; q < dwords_; ++q) {
      w[row * words + q / 2] |= static_cast<std::uint64_t>(src[q * kFgemmBwPanelRows]) << (32 * (q % 2));
    }
  }
}

const FgemmBwKernels& fgemm_bw_kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kFgemmBwAvx512;
    case Isa::avx2: return kFgemmBwAvx2;
    case Isa::neon: break;  // no NEON variant: the scalar reference
    case Isa::scalar: break;
  }
  return kFgemmBwScalar;
}

// ---- driver ----

namespace {

// Each thread's share of the (estimated, single-thread) work must be at least this; the
// estimate goes to parallel_run, which shares jobs under ~100 us only with workers that
// are already awake (as bgemm does).
constexpr double kMinMicrosPerThread = 10.0;
// Rows per task when rows are split, and the row chunk granule: a multiple of every
// kernel's row block (4 and 6), so row blocks are the same whatever the split.
constexpr std::int64_t kRowGranule = 12;
// Table bytes per row chunk.
constexpr std::int64_t kTableBytes = std::int64_t{1} << 20;

struct Job {
  FgemmBwRunFn run;
  const float* x;
  const float* t;
  const BinaryWeightsF32* w;
  float* y;
  std::int64_t m, table_floats;
  std::int64_t row_chunk, panel_chunk, panel_tasks;
};

void run_task(void* ctx, std::int64_t task, int /*thread*/) {
  const Job& j = *static_cast<const Job*>(ctx);
  const std::int64_t r0 = (task / j.panel_tasks) * j.row_chunk, r1 = std::min(j.m, r0 + j.row_chunk);
  const std::int64_t p0 = (task % j.panel_tasks) * j.panel_chunk;
  const std::int64_t p1 = std::min(j.w->panels(), p0 + j.panel_chunk);
  j.run(j.x + r0 * j.w->k(), j.t == nullptr ? nullptr : j.t + r0 * j.table_floats, r1 - r0, *j.w, p0, p1,
        j.y + r0 * j.w->n());
}

struct FreeFloats {
  void operator()(float* p) const noexcept { std::free(p); }
};

// The calling thread's table buffer, grown as needed (64-byte aligned).
float* table_buffer(std::size_t floats) {
  thread_local std::unique_ptr<float[], FreeFloats> buffer;
  thread_local std::size_t capacity = 0;
  if (floats > capacity) {
    const std::size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    buffer.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    capacity = buffer ? floats : 0;
    if (!buffer) throw std::bad_alloc();
  }
  return buffer.get();
}

}  // namespace

void fgemm_bw(const float* x, std::int64_t m, const BinaryWeightsF32& w, float* y, int num_threads, Isa isa) {
  const FgemmBwKernels& kern = fgemm_bw_kernels(isa);
  if (kern.run == nullptr) {
    throw std::invalid_argument(std::string("fgemm_bw: ISA ") + isa_name(isa) + " is not compiled in");
  }
  if (m <= 0 || w.n() == 0) return;
  const std::int64_t k = w.k(), table_floats = fgemm_bw_table_floats(k);
  std::int64_t chunk = m;
  float* tables = nullptr;
  if (kern.tables != nullptr) {
    const std::int64_t fit = kTableBytes / (table_floats * 4) / kRowGranule * kRowGranule;
    chunk = std::min(m, std::max(kRowGranule, fit));
    tables = table_buffer(static_cast<std::size_t>(chunk * table_floats));
  }
  for (std::int64_t r0 = 0; r0 < m; r0 += chunk) {
    const std::int64_t rows = std::min(chunk, m - r0);
    if (tables != nullptr) kern.tables(x + r0 * k, rows, k, tables);
    const double micros = static_cast<double>(rows) * static_cast<double>(w.panels() * kFgemmBwPanelRows) *
                          static_cast<double>(k) / kern.macs_per_us;
    const int threads =
        static_cast<int>(std::clamp<double>(micros / kMinMicrosPerThread, 1.0, std::max(num_threads, 1)));
    Job j{kern.run, x + r0 * k, tables, &w, y + r0 * w.n(), rows, table_floats, rows, w.panels(), 1};
    if (threads > 1) {
      // About 4 tasks per thread for balance (the machine may be shared), in whole blocks
      // of 12 panels where there are enough; rows are split too when there are too few.
      const std::int64_t want = 4 * static_cast<std::int64_t>(threads);
      j.panel_chunk = std::max<std::int64_t>(1, w.panels() / want);
      if (j.panel_chunk > 12) j.panel_chunk = j.panel_chunk / 12 * 12;
      const std::int64_t panel_tasks = (w.panels() + j.panel_chunk - 1) / j.panel_chunk;
      if (panel_tasks < want && rows > kRowGranule) {
        const std::int64_t row_tasks =
            std::min((want + panel_tasks - 1) / panel_tasks, (rows + kRowGranule - 1) / kRowGranule);
        j.row_chunk = ((rows + row_tasks - 1) / row_tasks + kRowGranule - 1) / kRowGranule * kRowGranule;
      }
    }
    j.panel_tasks = (w.panels() + j.panel_chunk - 1) / j.panel_chunk;
    const std::int64_t tasks = ((rows + j.row_chunk - 1) / j.row_chunk) * j.panel_tasks;
    parallel_run(static_cast<int>(std::min<std::int64_t>(threads, tasks)), tasks, run_task, &j, micros);
  }
}

}  // namespace onebit
