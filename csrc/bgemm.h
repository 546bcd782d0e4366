// Binary GEMM: C[m, n] = K - 2 * popcount(A[m, :] XOR W[n, :]).
//
// Specification (bgemm_reference in bgemm_scalar.cpp is this, in plain loops):
//   A: M x words packed activations, W: N x words packed weights, words = ceil(K / 64),
//   bit 0 = +1, bit 1 = -1, tail bits beyond K are 0 in both (checked at the binding),
//   C[m, n] = K - 2 * sum_{w < words} popcount(A[m, w] ^ W[n, w])   (int32),
// which is the dot product of the two ±1 vectors of length K.
//
// Threshold variant (BatchNorm + sign folded into integers): given T[n] (int32) and
// s[n] in {+1, -1}, the output value is +1 (bit 0) iff s[n] * (C[m, n] - T[n]) >= 0,
// else -1 (bit 1); bits are packed along n into ceil(N / 64) uint64 words per row, tail
// bits 0. Equivalently: bit = (C < T) when s = +1, bit = (C > T) when s = -1.
//
// Structure (as in XNNPACK / ruy / LCE): one micro-kernel signature, one implementation
// per ISA in its own file; bgemm.cpp holds the ISA-independent driver (cache blocking
// over K and N, threading over output tiles) and calls the micro-kernel through the
// table of the ISA chosen by dispatch.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "dispatch.h"
#include "float_stage.h"

namespace onebit {

// Weight rows per packed tile (the micro-kernel's N width): 4 zmm or 8 ymm per word.
constexpr std::int64_t kBgemmNR = 32;
// K block, in 64-bit words, of the cache-blocked driver (8192 bits; one K block of a
// weight tile is 32 KiB, which stays in L1 while the driver sweeps the activation rows).
constexpr std::int64_t kBgemmKC = 128;

// Weights pre-packed once, at load time, into the layout the micro-kernels read:
// N is padded to a multiple of kBgemmNR and cut into tiles of kBgemmNR rows; inside a
// tile the rows are interleaved word by word, so one K word of the whole tile is
// kBgemmNR consecutive uint64 (256 bytes, one cache-line-aligned run of 4 zmm):
//   data[(t * words + w) * kBgemmNR + j] = W[t * kBgemmNR + j, w]   (0 for padded rows)
// The buffer is 64-byte aligned.
class PackedWeights {
 public:
  // w: n x words row-major; words must be ceil(k / 64). Throws std::invalid_argument.
  PackedWeights(const std::uint64_t* w, std::int64_t n, std::int64_t words, std::int64_t k);

  // Internal (bconv): rows of `words` words whose valid bits need not be the first k_bits,
  // e.g. an im2col row of KH * KW taps of ceil(Cg / 64) words, each with its own zero
  // tail. k_bits (1 <= k_bits <= 64 * words) is the true K of K - 2 * popcount: exact
  // only when every bit that is not one of the k_bits valid ones is 0 in both operands
  // (the caller's guarantee; nothing is checked beyond the range of k_bits).
  static PackedWeights with_k_bits(const std::uint64_t* w, std::int64_t n, std::int64_t words,
                                   std::int64_t k_bits);

  std::int64_t n() const { return n_; }
  // The true bit count K (== the bits of the rows, at most 64 * words()).
  std::int64_t k() const { return k_; }
  std::int64_t words() const { return words_; }
  std::int64_t tiles() const { return tiles_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(tiles_ * words_ * kBgemmNR) * 8; }
  // Start of tile t: words x kBgemmNR uint64.
  const std::uint64_t* tile(std::int64_t t) const { return data_.get() + t * words_ * kBgemmNR; }
  // Writes the original n x words rows back.
  void unpack(std::uint64_t* w) const;

 private:
  struct KBitsTag {};
  PackedWeights(KBitsTag, const std::uint64_t* w, std::int64_t n, std::int64_t words, std::int64_t k);
  struct Free {
    void operator()(std::uint64_t* p) const noexcept;
  };
  std::int64_t n_ = 0, k_ = 0, words_ = 0, tiles_ = 0;
  std::unique_ptr<std::uint64_t[], Free> data_;
};

// ---- Micro-kernel family: one signature, one implementation per ISA. ----

enum : unsigned {
  kBgemmFirst = 1u,  // first K block: start from 0 instead of the partial sums in c
  kBgemmLast = 2u,   // last K block: write K - 2 * sum instead of the partial sum
};

// For i < mr, j < nr (1 <= mr <= the ISA's mr, 1 <= nr <= kBgemmNR, kc >= 1):
//   s = sum_{w < kc} popcount(a[i * lda + w] ^ wt[w * kBgemmNR + j])
//   if !(flags & kBgemmFirst): s += c[i * ldc + j]          (partial sum of earlier blocks)
//   c[i * ldc + j] = (flags & kBgemmLast) ? k_bits - 2 * s : s
// `wt` points into a packed tile (PackedWeights::tile(t) + w0 * kBgemmNR). Only the
// mr x nr block of c is read or written.
using BgemmUkernelFn = void (*)(std::int64_t mr, std::int64_t nr, std::int64_t kc,
                                const std::uint64_t* a, std::int64_t lda,
                                const std::uint64_t* wt, std::int32_t* c, std::int64_t ldc,
                                std::int32_t k_bits, unsigned flags);

// The micro-kernel on an A matrix given as segments instead of rows: an implicit im2col.
// Row i of A is the concatenation over q < nseg of the seg_words words at seg[q] + i * pix
// (a conv's pixels of one output row: segment q is kernel row q's run of taps, pixel i is
// pix = stride * words-per-pixel words further), so for i < mr, j < nr:
//   s = sum_{q < nseg, w < seg_words} popcount(seg[q][i * pix + w] ^ wt[(q * seg_words + w) * kBgemmNR + j])
// then c as the ukernel writes it (flags). nullptr where an ISA has none (its convolutions
// copy the rows: im2col).
using BgemmSegUkernelFn = void (*)(std::int64_t mr, std::int64_t nr, std::int64_t nseg,
                                   const std::uint64_t* const* seg, std::int64_t seg_words, std::int64_t pix,
                                   const std::uint64_t* wt, std::int32_t* c, std::int64_t ldc,
                                   std::int32_t k_bits, unsigned flags);

// Threshold output stage, for i < mr, j < nr <= 32 (thresh[j] read for j < nr only):
//   neg_j = (neg >> j) & 1   (1 where s = -1)
//   bit j of out[i * ldo] = neg_j ? (c[i * ldc + j] > thresh[j]) : (c[i * ldc + j] < thresh[j])
// bits j >= nr are 0; out[i * ldo] (32 bits, half of an output word) is overwritten.
using ThresholdStageFn = void (*)(std::int64_t mr, std::int64_t nr, const std::int32_t* c,
                                  std::int64_t ldc, const std::int32_t* thresh, std::uint32_t neg,
                                  std::uint32_t* out, std::int64_t ldo);

// Register-resident loop with the micro-kernel's steady-state instruction mix, run for
// `iters` iterations; returns the number of binary MACs (bit pairs XORed and counted) it
// did. Used by the benchmark to measure the peak binary MACs/s of the ISA.
using PeakLoopFn = std::uint64_t (*)(std::int64_t iters);

struct BgemmKernels {
  std::int64_t mr;             // activation rows per micro-kernel call
  BgemmUkernelFn ukernel;
  ThresholdStageFn threshold;
  PeakLoopFn peak;             // nullptr where there is no meaningful peak (scalar)
  const char* peak_mix;        // what the peak loop executes per bit pair group
  BgemmSegUkernelFn ukernel_seg = nullptr;  // the implicit-im2col micro-kernel, where there is one
};

// Defined in bgemm_scalar.cpp, bgemm_avx2.cpp, bgemm_avx512.cpp (ukernel == nullptr where
// the ISA cannot be compiled for this architecture).
extern const BgemmKernels kBgemmScalar;
extern const BgemmKernels kBgemmAvx2;
extern const BgemmKernels kBgemmAvx512;
#if defined(__aarch64__)
// bgemm_neon.cpp, built on AArch64 only (elsewhere parse_isa does not know Isa::neon).
extern const BgemmKernels kBgemmNeon;
#endif

const BgemmKernels& bgemm_kernels(Isa isa);

// ---- Driver (bgemm.cpp). num_threads >= 1 is a maximum; small problems use fewer. ----

// a: m x w.words() (tail bits 0), c: m x w.n() int32.
void bgemm(const std::uint64_t* a, std::int64_t m, const PackedWeights& w, std::int32_t* c,
           int num_threads, Isa isa);

// out: m x w.n() float32, the float stage (float_stage.h) of bgemm's int32 result, applied
// in each task to its block while that is in cache.
void bgemm_float(const std::uint64_t* a, std::int64_t m, const PackedWeights& w, const FloatStage& stage,
                 float* out, int num_threads, Isa isa);

// thresh, sign: w.n() entries (sign in {+1, -1}); out: m x ceil(w.n() / 64) uint64.
void bgemm_threshold(const std::uint64_t* a, std::int64_t m, const PackedWeights& w,
                     const std::int32_t* thresh, const std::int8_t* sign, std::uint64_t* out,
                     int num_threads, Isa isa);

// Internal, for drivers that thread on their own (bconv.cpp): how many threads (1 ..
// num_threads) the bgemm driver's rule gives `pairs` word pairs of GEMM work (M > MR).
// With `micros`, the estimated single-thread time is stored there and the caller must
// pass it to parallel_run (which then wakes no sleeping worker for a small job), so the
// thread count follows the smaller per-thread minimum that bgemm itself uses.
int bgemm_threads_for(const BgemmKernels& kern, double pairs, int num_threads, double* micros = nullptr);

// Internal, for drivers that tile and thread on their own (bconv.cpp): on the calling
// thread, for i < m and the columns j of weight tiles [t0, t1) (j < w.n()):
//   c[i * ldc + j - t0 * kBgemmNR] = K - 2 * popcount(a[i * lda + 0 .. words) ^ W[j])
// with the same K blocking and micro-kernels as bgemm (kern: bgemm_kernels(isa), which
// must be compiled in). lda >= w.words(), ldc >= the columns written.
void bgemm_serial(const BgemmKernels& kern, const std::uint64_t* a, std::int64_t lda, std::int64_t m,
                  const PackedWeights& w, std::int64_t t0, std::int64_t t1, std::int32_t* c,
                  std::int64_t ldc);

// The specification, on the unpacked n x words weight rows; single thread, no blocking.
void bgemm_reference(const std::uint64_t* a, std::int64_t m, const std::uint64_t* w,
                     std::int64_t n, std::int64_t words, std::int64_t k, std::int32_t* c);

// Index of the first row whose bits beyond k (in its last word) are not all 0, or -1.
std::int64_t first_row_with_tail_bits(const std::uint64_t* rows, std::int64_t n,
                                      std::int64_t words, std::int64_t k);

}  // namespace onebit
