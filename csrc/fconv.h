// Float 2-D convolution on NHWC float32 input: the float layers BNNs keep (a first conv
// on 3 channels, with +-1 weights expanded to float or float weights; Bi-Real Net's 7x7
// stem; 1x1 shortcut convs; depthwise convs), with the padding, the optional max-pool of
// the result and the per-channel output stage fused, threaded over output rows.
//
// Specification (fconv_reference in fconv_scalar.cpp is this, in plain loops):
//   x: N x H x W x C float32; weights W: O x KH x KW x Cg, Cg = C / groups, Og = O / groups;
//   xp = x padded by (ph, pw) rows/columns of pad_value on each side;
//   y[n, r, q, o] = the float32 FMA chain, acc = 0, then for (i, j, c) in ascending order
//       acc = fma(xp[n, r sh + i dh, q sw + j dw, g Cg + c], W[o, i, j, c], acc),  g = o / Og,
//   i.e. one rounding per term, in the order of the weight tensor's last three axes.
// Every ISA (scalar with std::fma, AVX2 + FMA, AVX-512) evaluates exactly this chain, so
// all ISAs and all thread counts give the same bits.
// Then, optional: a max-pool of y (floor mode, padded positions ignored, 2 pad <= kernel);
// then the output stage, per output channel o:
//   raw:   y;   float: act(y * scale[o] + bias[o]) (a product then a sum, two roundings,
//   as numpy's y *= scale; y += bias), act in none / relu (z > 0 ? z : 0) / hardtanh
//   (min(max(z, -1), 1));   bits: packed along o, bit 1 (-1) iff y * scale[o] + bias[o] < 0.
//   Without a pool the stage runs inside the micro-kernel on its registers (FconvOut).
//
// Method: no im2col matrix. Per output row, the KH input rows it reads are taken in
// place (or, at the padded border, copied once into a padded row of the task's scratch),
// and the micro-kernel walks them as "segments": for a block of MR consecutive output
// pixels, pixel p's inputs for segment s are seg[s] + p * pstride .. + len[s] - 1 (one
// segment per kernel row i when dw = 1 and groups = 1, holding its KW * C contiguous
// inputs; one per tap otherwise). Weights are packed once into panels of 16 output
// channels, kdim x 16 floats (kdim = KH KW Cg), so the kernel does MR broadcasts and NV
// panel loads per input and MR x NV FMAs (AVX-512: 6 pixels x 4 panels in 24 zmm).
// Depthwise (Cg = Og = 1) uses its own kernel: channels in the vector lanes, a tap loop.
// A fused max-pool keeps the task's last KH_pool conv rows in a ring; with one channel
// block (groups = 1, or depthwise) the ISA's pool_stage kernel takes each output pixel's
// window max and output stage in registers, one pass per output row; with groups it takes
// the max separably (rows, then columns) with the ISA's vector max, then the stage.
// AVX2 kernels need FMA too; a CPU with AVX2 and no FMA runs the scalar ones (same bits).
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "dispatch.h"

namespace onebit {

constexpr std::int64_t kFconvPanel = 16;

// ---- Kernel family: one signature each, one implementation per ISA. ----

enum class FconvAct : int { none = 0, relu = 1, hardtanh = 2 };

// Where and how a GEMM kernel writes its results (y already offset to its first panel).
//   raw:   y[p * ldy + j] = acc(p, j) for every j < 16 * panels (float).
//   stage: z = act(acc * scale[j] + bias[j]), a product then a sum (two roundings), act:
//          relu z > 0 ? z : 0, hardtanh min(max(z, -1), 1) as (t < 1 ? t : 1) of
//          (z > -1 ? z : -1); written for j < cols only (float).
//   bits:  z as above with act none; uint16 y[p * ldy + panel] = bits (z[16 panel + l] < 0) << l.
// scale and bias hold 16 * panels entries (zeros beyond the real channels, so their bits are 0).
struct FconvOut {
  enum Kind : int { raw = 0, stage = 1, bits = 2 };
  Kind kind = raw;
  const float* scale = nullptr;
  const float* bias = nullptr;
  FconvAct act = FconvAct::none;
  std::int64_t cols = 0;
  void* y = nullptr;
  std::int64_t ldy = 0;  // per pixel: floats (raw, stage) or uint16 (bits)
};

// For pixels p < m and output columns j < 16 * panels, acc(p, j) = the FMA chain over
// k < kdim (ascending), from 0, of in(p, k) * w[(j / 16) * kdim * 16 + k * 16 + j % 16],
// where in(p, k) = seg[s][p * pstride + k - start(s)] for the segment s holding k
// (segments in order, len[s] inputs each, summing to kdim); written as out says.
using FconvGemmFn = void (*)(const float* const* seg, const std::int64_t* len, std::int64_t nseg, std::int64_t m,
                             std::int64_t pstride, const float* w, std::int64_t kdim, std::int64_t panels,
                             const FconvOut& out);

// Depthwise, one output row: rows[i] is the padded input row of kernel row i (pixel 0 =
// padded column 0); for q < ow, c < channels:
//   y[q * channels + c] = FMA chain over (i, j) ascending of rows[i][(q sw + j dw) channels + c] * w[(i kw + j) channels + c].
using FconvDepthwiseFn = void (*)(const float* const* rows, std::int64_t ow, std::int64_t channels, std::int64_t kh,
                                  std::int64_t kw, std::int64_t sw, std::int64_t dw, const float* w, float* y);

// y[i] = y[i] < x[i] ? x[i] : y[i] for i < count (the fused max-pool's step).
using FconvMaxFn = void (*)(float* y, const float* x, std::int64_t count);

// One output row of the fused max-pool and output stage, in one pass over the window's conv
// rows rows[i], i < nrows (in order; each ow pixels of ytot floats). Output pixel q's
// columns are k in [k0, k1) = [q sw - pad, q sw - pad + kw) clipped to [0, ow); per channel
// c < cols, with max(x, y) = y < x ? x : y, in the order fpool2d's separable max takes:
//   t_k = rows[0][k], then t_k = max(rows[i][k], t_k) for i = 1 ..;   m = t_k0, then
//   m = max(t_k, m) for k = k0 + 1 ..;
//   out[q * cols + c] = m, or with scale: act(m * scale[c] + bias[c]) (two roundings; act
//   as FconvOut's stage).
using FconvPoolStageFn = void (*)(const float* const* rows, std::int64_t nrows, std::int64_t ow, std::int64_t ytot,
                                  std::int64_t pw, std::int64_t kw, std::int64_t sw, std::int64_t pad,
                                  const float* scale, const float* bias, FconvAct act, std::int64_t cols, float* out);

// Peak float MACs/s of the ISA: a register-resident loop of independent FMAs (16
// accumulators with AVX-512, 12 with AVX2: enough to cover the FMA latency on two pipes), iters iterations; returns
// the float MACs done. The float side of the roofline (benchmarks/bench_roofline.py).
using FconvPeakFn = std::uint64_t (*)(std::int64_t iters);

// One output row of a max-pool of a per-channel affine of the input, then optionally ReLU (a
// DenseNet transition's BatchNorm, max-pool and ReLU on one part of its features): rows[i],
// i < nrows, are the window's input rows in order, w pixels of c floats each, ldx floats
// apart. Per channel j < c, a(x) = x * scale[j] + bias[j] (two roundings); output pixel q's
// columns k as pool_stage's; t_k = a(rows[0][k]), then t_k = max(a(rows[i][k]), t_k);
// m = t_k0, then m = max(t_k, m); out[q * ldo + j] = m, or with relu (m <= 0 ? +0 : m).
using FconvAffinePoolFn = void (*)(const float* const* rows, std::int64_t nrows, std::int64_t w, std::int64_t ldx,
                                   std::int64_t c, std::int64_t pw, std::int64_t kw, std::int64_t sw, std::int64_t pad,
                                   const float* scale, const float* bias, bool relu, float* out, std::int64_t ldo);

struct FconvKernels {
  FconvGemmFn gemm;            // nullptr where the ISA is not compiled for this architecture
  FconvDepthwiseFn depthwise;
  FconvMaxFn max;
  FconvPoolStageFn pool_stage;
  FconvAffinePoolFn affine_pool;
  double macs_per_us;          // rough single-thread speed (Zen 5), for the thread planner
  FconvPeakFn peak;            // nullptr for the scalar reference (no peak to speak of)
};

// fconv_scalar.cpp (the reference), fconv_avx2.cpp, fconv_avx512.cpp.
extern const FconvKernels kFconvScalar;
extern const FconvKernels kFconvAvx2;
extern const FconvKernels kFconvAvx512;

// The kernels of an ISA; AVX2 on a CPU without FMA gets the scalar ones (same bits).
const FconvKernels& fconv_kernels(Isa isa);

// ---- The convolution ----

struct FconvStage {
  const float* scale = nullptr;  // nullptr: raw y (float output); else scale and bias, O each
  const float* bias = nullptr;
  FconvAct act = FconvAct::none;
  bool bits = false;             // packed output (needs scale and bias)
};

struct FconvPool {
  bool on = false;
  std::array<std::int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0};
  std::array<std::int64_t, 2> padding_end{-1, -1};  // bottom/right; -1: = padding
};

// Seconds summed over threads: padded rows, micro-kernels (with the output stage where it
// is fused into them: no pool, groups = 1 or O / groups a multiple of 16, not depthwise),
// pool + separate output stage.
struct FconvProfile {
  double prep_s = 0.0, gemm_s = 0.0, stage_s = 0.0;
};

class FloatConv2d {
 public:
  // w: O x KH x KW x Cg float32 (Cg = in_channels / groups). Throws std::invalid_argument
  // on bad sizes (groups must divide in_channels and O; kernel, stride, dilation >= 1, padding >= 0).
  FloatConv2d(const float* w, std::int64_t out_channels, std::int64_t kh, std::int64_t kw, std::int64_t in_channels,
              std::int64_t groups, std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
              std::array<std::int64_t, 2> dilation, float pad_value,
              std::array<std::int64_t, 2> padding_end = {-1, -1});  // bottom/right; -1: = padding (symmetric)

  std::int64_t out_channels() const { return o_; }
  std::int64_t in_channels() const { return c_; }
  std::int64_t groups() const { return groups_; }
  bool depthwise() const { return depthwise_; }
  std::array<std::int64_t, 2> kernel_size() const { return {kh_, kw_}; }
  std::array<std::int64_t, 2> stride() const { return stride_; }
  std::array<std::int64_t, 2> padding() const { return padding_; }
  std::array<std::int64_t, 2> padding_end() const { return padding_end_; }
  std::array<std::int64_t, 2> dilation() const { return dilation_; }
  float pad_value() const { return pad_value_; }

  // (OH, OW) of the convolution for an H x W input; throws std::invalid_argument if < 1.
  std::array<std::int64_t, 2> output_shape(std::int64_t h, std::int64_t w) const;

  // x: n x h x w x C. out: n x PH x PW x O float32, or x ceil(O / 64) uint64 with
  // stage.bits, (PH, PW) the pool's output (the conv's without a pool; the caller has
  // checked the pool fits, see fpool2d_output_shape). num_threads >= 1 is a maximum.
  void run(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, const FconvStage& stage,
           const FconvPool& pool, void* out, int num_threads, Isa isa, FconvProfile* profile = nullptr) const;

 private:
  friend struct FconvRun;
  struct Free {
    void operator()(float* p) const noexcept;
  };
  std::int64_t o_, kh_, kw_, c_, groups_, cg_, og_, ogp_, kdim_;
  std::array<std::int64_t, 2> stride_, padding_, dilation_;
  std::array<std::int64_t, 2> padding_end_;  // after (bottom, right): TensorFlow's "same" puts the odd pixel there
  float pad_value_;
  bool depthwise_;
  // GEMM path: groups x (ogp_ / 16) panels of kdim_ x 16 floats (zero columns beyond og_).
  // Depthwise: (KH KW) x C, tap-major.
  std::unique_ptr<float[], Free> w_;
};

// Max- (mean = false) or average-pool (mean = true; padded zeros count, PyTorch's
// count_include_pad) of float32 NHWC x: n x h x w x c -> out: n x PH x PW x c, floor mode,
// padded positions never win the max. The average sums the window's taps in order
// (row-major), then multiplies by the float32 1 / (kh kw). Threaded over output rows.
// padding is (top, left); padding_end (bottom, right), {-1, -1} for the same as padding;
// each at most kernel / 2, so every window has a pixel inside the image.
std::array<std::int64_t, 2> fpool2d_output_shape(std::int64_t h, std::int64_t w, std::array<std::int64_t, 2> kernel,
                                                 std::array<std::int64_t, 2> stride,
                                                 std::array<std::int64_t, 2> padding,
                                                 std::array<std::int64_t, 2> padding_end = {-1, -1});
// The max takes the ISA's max kernel (FconvKernels::max, the same y < x ? x : y per element).
void fpool2d(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
             std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
             std::array<std::int64_t, 2> padding, bool mean, float* out, int num_threads,
             std::array<std::int64_t, 2> padding_end = {-1, -1}, Isa isa = Isa::scalar);

// A DenseNet transition of the channel concatenation of n_parts NHWC arrays (part k: n x h x
// w x channels[k]): relu?(maxpool(concat * scale + bias)) -> out: n x PH x PW x C, C the
// channels in all: fpool2d's maxima of the BatchNorm's output, in fpool2d's order, then with
// relu maximum(y, 0) as numpy (y <= 0 -> +0, NaN kept); the BatchNorm's output is never
// stored: each part's window rows are read in place by the ISA's affine_pool kernel. Threaded
// over output rows.
void faffine_maxpool_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t n,
                           std::int64_t h, std::int64_t w, const float* scale, const float* bias,
                           std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                           std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> padding_end, bool relu,
                           float* out, int num_threads, Isa isa);

// The specification of y (no pool, no stage): plain loops, one thread, std::fma.
// w: O x KH x KW x Cg; y: n x OH x OW x O.
void fconv_reference(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                     const float* weights, std::int64_t o, std::int64_t kh, std::int64_t kw, std::int64_t groups,
                     std::array<std::int64_t, 2> stride, std::array<std::int64_t, 2> padding,
                     std::array<std::int64_t, 2> dilation, float pad_value, float* y);

}  // namespace onebit
