// Float inputs x binary weights: the GEMM of a float first layer whose weights are +-1
// (BinaryNet's first dense layer), without expanding the weights to dense float32.
//
// Specification (fgemm_bw_reference in fgemm_bw_scalar.cpp is this, in plain loops):
//   x: M x K float32 row-major; W: N x words packed weights, words = ceil(K / 64),
//   bit k % 64 of W[n, k / 64] = 1 means s[n, k] = -1, 0 means +1 (the bgemm encoding),
//   tail bits beyond K are 0 (checked at the binding);
//   y[m, n] = sum_k x[m, k] * s[n, k]                                     (float32 M x N)
//
// Accuracy, every ISA: with u = 2^-24,
//   |y[m, n] - exact| <= 2^-17 * sum_k |x[m, k]|        (2^-17 = 128 u ~= 7.6e-6)
// whatever K is. The scalar path (the reference) sums in double: ~1 u. The SIMD paths
// add table entries (below; each the sum of 4 terms, error <= 2 u times their |x|) in
// float32 chains of 64 entries (kFgemmBwKC = 256 columns) and add those block sums in
// double, then round once: error <= (2 + 63 + 1) u * sum|x| (+ double roundings).
// The AVX2 and AVX-512 kernels do the same float operations in the same order, so they
// give the same bits; any ISA gives the same bits for any thread count and any M (a row's
// result does not depend on the other rows of the batch). The scalar path differs from
// them in the last bits. NaN / Inf inputs give NaN / Inf outputs; nothing traps.
//
// Method (a look-up-table GEMV/GEMM, as in LUT-GEMM / T-MAC): for each row of x and each
// group of 4 columns 4g .. 4g + 3, a table of the 16 signed sums
//   T[g][p] = (t0 + t1) + (t2 + t3),   t_j = (bit j of p ? -1 : +1) * x[4g + j]
// (x = 0 beyond K) fits one zmm (two ymm). The weights, repacked once at load time,
// give for 16 weight rows (one panel) and 32 columns one vector of 16 uint32 whose lane
// b holds those 32 bits of row b; nibble g of lane b selects T[g][nibble] for output b,
// so one permute (vpermps) + one add does 16 outputs x 4 columns, for every row of x
// that shares the weight vector. AVX2 permutes 8 entries: two permutes (T[.][0..7],
// T[.][8..15]) and a blend on nibble bit 3.
//
// Layout (BinaryWeightsF32): rows cut into panels of 16 (N padded with zero rows),
// dwords = ceil(K / 32) per row:
//   data[(p * dwords + w) * 16 + b] = bits 32 w .. 32 w + 31 of weight row 16 p + b.
// Structure: one kernel signature per family (tables, run), one implementation per ISA
// in its own file; fgemm_bw.cpp holds the weight repacking and the driver (row chunks,
// threads over panels of N on the engine's pool).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dispatch.h"

namespace onebit {

constexpr std::int64_t kFgemmBwPanelRows = 16;
// Columns per float32 summation block (64 table entries; see the accuracy note).
constexpr std::int64_t kFgemmBwKC = 256;
// Floats of the tables of one row of x: 16 per group of 4 columns, ceil(K / 32) * 8 groups.
constexpr std::int64_t fgemm_bw_table_floats(std::int64_t k) { return (k + 31) / 32 * 8 * 16; }

class BinaryWeightsF32 {
 public:
  // w: n x ceil(k / 64) uint64 rows, bits beyond k zero (not checked here). k >= 1, n >= 0.
  // Throws std::invalid_argument on bad sizes.
  BinaryWeightsF32(const std::uint64_t* w, std::int64_t n, std::int64_t k);

  std::int64_t n() const { return n_; }
  std::int64_t k() const { return k_; }
  std::int64_t panels() const { return panels_; }
  // uint32 words per row: ceil(k / 32).
  std::int64_t dwords() const { return dwords_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(panels_ * dwords_ * kFgemmBwPanelRows) * 4; }
  // Panel p: dwords() vectors of 16 uint32 (64-byte aligned).
  const std::uint32_t* panel(std::int64_t p) const { return data_.get() + p * dwords_ * kFgemmBwPanelRows; }
  // Writes the original n x ceil(k / 64) uint64 rows back.
  void unpack(std::uint64_t* w) const;

 private:
  struct Free {
    void operator()(std::uint32_t* p) const noexcept;
  };
  std::int64_t n_ = 0, k_ = 0, panels_ = 0, dwords_ = 0;
  std::unique_ptr<std::uint32_t[], Free> data_;
};

// ---- Kernel family: one signature each, one implementation per ISA. ----

// Tables of rows i < m of x (m x k): t + i * fgemm_bw_table_floats(k) + 16 * g + p =
// T[g][p] of row i as defined above, for g < fgemm_bw_table_floats(k) / 16 (0 beyond K).
// t is 64-byte aligned.
using FgemmBwTablesFn = void (*)(const float* x, std::int64_t m, std::int64_t k, float* t);

// For rows i < m of x (m x w.k(); t: their tables, or nullptr for the scalar path) and
// the output columns j of panels [p0, p1) (16 p0 <= j < min(16 p1, w.n())):
//   y[i * w.n() + j] = sum_k x[i, k] * s[j, k]    (within the bound above)
// Nothing else of y is written. Runs on the calling thread.
using FgemmBwRunFn = void (*)(const float* x, const float* t, std::int64_t m, const BinaryWeightsF32& w,
                              std::int64_t p0, std::int64_t p1, float* y);

struct FgemmBwKernels {
  FgemmBwTablesFn tables;    // nullptr: run needs no tables (scalar)
  FgemmBwRunFn run;          // nullptr where the ISA is not compiled for this architecture
  double macs_per_us;        // rough single-thread speed (Zen 5), for the thread planner
};

// fgemm_bw_scalar.cpp (the reference), fgemm_bw_avx2.cpp, fgemm_bw_avx512.cpp.
extern const FgemmBwKernels kFgemmBwScalar;
extern const FgemmBwKernels kFgemmBwAvx2;
extern const FgemmBwKernels kFgemmBwAvx512;

const FgemmBwKernels& fgemm_bw_kernels(Isa isa);

// ---- Driver (fgemm_bw.cpp). num_threads >= 1 is a maximum; small problems use fewer. ----

// x: m x w.k() float32, y: m x w.n() float32.
void fgemm_bw(const float* x, std::int64_t m, const BinaryWeightsF32& w, float* y, int num_threads, Isa isa);

// The specification on the unpacked n x ceil(k / 64) rows: double accumulation, one thread.
void fgemm_bw_reference(const float* x, std::int64_t m, const std::uint64_t* w, std::int64_t n, std::int64_t k,
                        float* y);

}  // namespace onebit
