// Binary 2-D convolution and binary max-pool on packed NHWC activations.
//
// Encoding (see shared/design/ARCHITECTURE.md): bit 0 = +1, bit 1 = -1, channels packed
// into 64-bit words. Activations x: uint64 (N, H, W, ceil(C / 64)), tail bits 0.
// Weights: uint64 (O, KH, KW, ceil(Cg / 64)), Cg = C / groups, tail bits 0.
//
// Specification of BinaryConv2d::run: y[n, oy, ox, o] (int32) is the integer convolution
// of the ±1 tensors, PyTorch's conv2d(x_pm padded with pad_value, w_pm, stride, dilation,
// groups) with the ±1 input padded by pad_value in {-1, 0, +1}:
//   y = sum over taps (ky, kx) and c < Cg of w[o, ky, kx, c] * xp[n, oy*sh - ph + ky*dh,
//       ox*sw - pw + kx*dw, g(o)*Cg + c],      OH = (H + 2ph - dh*(KH-1) - 1) / sh + 1.
// run_threshold packs sign(flip[o] * (y - threshold[o])) (>= 0 -> +1, bit 0) along o,
// the rule of bgemm_threshold.
//
// Method: bit-level im2col + the bgemm micro-kernels. The output pixels are cut into
// tiles of P rows (a multiple of the ISA's MR, sized so the tile's im2col rows stay in
// L2); each task of the thread pool copies, per pixel of its tile, the whole uint64 words
// of every kernel tap into a row of KH*KW*words_g words (a padded tap gets the pad word:
// all 0 for +1 and 0, the Cg valid bits for -1) and runs bgemm_serial on those rows
// against the weights packed once (PackedWeights::with_k_bits, K = KH*KW*Cg: the word
// tails are 0 in both operands). A 1x1 stride-1 unpadded conv reads x directly (no copy).
// Zero padding: padded taps hold +1, so the sum includes sum_c w[o, tap, c] for each
// padded tap; those per-tap weight sums are computed at construction (as 2-D prefix sums
// over the taps) and, per run, turned into one correction vector per distinct border
// pattern (the valid taps of a pixel form a box [ky0, ky1) x [kx0, kx1) that depends on
// oy and ox only; O x 4 lookups per pattern), so the correction costs one subtraction
// per output of a border pixel. When there are few pixel tiles (small images, batch 1) the
// tasks also split the output channels.
// Implicit im2col (an ISA with a segmented micro-kernel, bgemm.h; one group, up to 2 words
// per tap): a window of MR output pixels inside one output row's interior is not copied;
// the micro-kernel reads its K words from x directly, kernel row by kernel row (each a run
// of KW taps), the pixels stride words apart. Only the other windows (borders, row ends)
// are copied. At 64 channels the copy was a fifth of the time.
//
// With one group of Cg < 64 channels, the taps are packed densely instead (tap t at bit
// t * Cg of the row, words_for(KH*KW*Cg) words per row, the same in the weights), which
// cuts the GEMM's K words by up to 64 / Cg; the pad word then has its Cg low bits set for -1.
//
// Groups: 1, or any g with Cg a multiple of 64 (whole words per group) and O % g == 0.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "bgemm.h"
#include "bitpack.h"
#include "dispatch.h"
#include "float_stage.h"

namespace onebit {

struct Borders;  // bconv.cpp

class BinaryConv2d {
 public:
  // w: O x KH x KW x words_for(Cg) uint64 (tail bits 0: the caller checks them). Throws
  // std::invalid_argument on bad parameters (see the class comment).
  BinaryConv2d(const std::uint64_t* w, std::int64_t out_channels, std::int64_t kh, std::int64_t kw,
               std::int64_t in_channels, std::int64_t groups, std::array<std::int64_t, 2> stride,
               std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> dilation, int pad_value,
               std::array<std::int64_t, 2> padding_end = {-1, -1});  // bottom/right; -1: = padding (symmetric)
  BinaryConv2d(const BinaryConv2d&) = delete;
  BinaryConv2d& operator=(const BinaryConv2d&) = delete;

  std::int64_t out_channels() const { return o_; }
  std::int64_t in_channels() const { return c_; }
  std::int64_t groups() const { return g_; }
  std::array<std::int64_t, 2> kernel_size() const { return {kh_, kw_}; }
  std::array<std::int64_t, 2> stride() const { return {sh_, sw_}; }
  std::array<std::int64_t, 2> padding() const { return {ph_, pw_}; }
  std::array<std::int64_t, 2> padding_end() const { return {pb_, pr_}; }
  std::array<std::int64_t, 2> dilation() const { return {dh_, dw_}; }
  int pad_value() const { return pad_value_; }
  std::int64_t in_words() const { return in_words_; }        // words per input pixel
  std::int64_t group_words() const { return words_g_; }      // words per tap and group
  std::int64_t k_bits() const { return kh_ * kw_ * cg_; }    // K of each output
  // (OH, OW) for an H x W input; throws std::invalid_argument if either is < 1.
  std::array<std::int64_t, 2> output_shape(std::int64_t h, std::int64_t w) const;

  // Time spent per phase by run / run_threshold (summed over threads) when asked for.
  struct Profile {
    double im2col_s = 0, gemm_s = 0, epilogue_s = 0;
  };

  // x: n x h x w x in_words() uint64, tail bits 0 (checked by the caller).
  // y: n x OH x OW x O int32.
  void run(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int32_t* y,
           int num_threads, Isa isa, Profile* profile = nullptr) const;
  using FloatStage = onebit::FloatStage;  // float_stage.h
  // y: n x OH x OW x O float32, the stage applied in each task while its tile is in cache.
  void run_float(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w, const FloatStage& stage,
                 float* y, int num_threads, Isa isa, Profile* profile = nullptr) const;
  // A binary max-pool fused after the threshold stage: bmaxpool2d's parameters (checked
  // by the caller with bmaxpool2d_output_shape) and its and_mask of words_for(O) words.
  struct BitPool {
    std::array<std::int64_t, 2> kernel, stride, padding;
    const std::uint64_t* and_mask;
    std::array<std::int64_t, 2> padding_end{-1, -1};  // bottom/right; -1: = padding
  };
  // thresh: O int32, flip: O int8 in {+1, -1}; out: n x OH x OW x words_for(O) uint64, or
  // with pool the n x PH x PW x words_for(O) of bmaxpool2d on that, computed per task on
  // conv rows still in cache (tasks then own whole pooled rows) instead of a second pass.
  void run_threshold(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w,
                     const std::int32_t* thresh, const std::int8_t* flip, std::uint64_t* out,
                     int num_threads, Isa isa, const BitPool* pool = nullptr, Profile* profile = nullptr) const;

 private:
  friend struct ConvRun;
  std::int64_t o_, kh_, kw_, c_, g_, cg_, og_;
  std::int64_t sh_, sw_, ph_, pw_, dh_, dw_;
  int pad_value_;
  std::int64_t pb_, pr_;  // padding after (bottom, right): TensorFlow's "same" puts the odd pixel there
  std::int64_t in_words_, words_g_, taps_;
  // Dense taps (groups = 1, Cg < 64, more than one tap, when it saves words): tap t's Cg
  // bits sit at bit t * Cg of an im2col row of words_for(taps_ * Cg) words, in the weights
  // and in im2col, instead of one word per tap (QuickNet's 32-channel 3x3 convs: 5 words, not 9).
  bool dense_ = false;
  std::int64_t row_words_ = 0;            // words of one im2col row (and of one packed weight row)
  std::vector<PackedWeights> packed_;     // one per group: og_ rows of row_words_ words
  std::vector<std::uint64_t> pad_word_;   // words_g_ words written for a padded tap
  // pad 0: 2-D prefix sums over the taps of S[o, ky, kx] = sum over c of w[o, ky, kx, c] (±1):
  // tap_prefix_[(y * (kw_ + 1) + x) * o_ + o] = sum of S[o, ky < y, kx < x], so the sum over
  // any box of taps (and over the taps outside it) costs 4 lookups per output channel.
  std::vector<std::int32_t> tap_prefix_;
  // The border plan (valid taps per output row and column, zero-padding corrections) of
  // the last input size, kept between calls: building it took a microsecond a call.
  struct BorderCache;
  std::shared_ptr<BorderCache> borders_;
  std::shared_ptr<const Borders> borders(std::int64_t h, std::int64_t w, std::int64_t oh, std::int64_t ow) const;
  std::shared_ptr<const Borders> make_borders(std::int64_t h, std::int64_t w, std::int64_t oh, std::int64_t ow) const;
};

// Binary max-pool (PyTorch semantics: floor mode, padded positions ignored, which needs
// 2 * padding <= kernel). x: n x h x w x words uint64 (words = words_for(channels), tail
// bits 0); and_mask: words uint64. For each output pixel and word,
//   out = (AND of the window's words & and_mask) | (OR of the window's words & ~and_mask)
// i.e. max of the ±1 values (bit 1 = -1 only if all are -1) where and_mask has a 1 and
// min elsewhere. out: n x OH x OW x words, OH = (h + ph + ph_end - kh) / sh + 1.
// padding is (top, left); padding_end (bottom, right), {-1, -1} for the same as padding:
// TensorFlow's "same" max-pool puts the odd pixel after (-inf there, i.e. ignored).
// Throws std::invalid_argument on bad parameters.
void bmaxpool2d(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w,
                std::int64_t channels, std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                std::array<std::int64_t, 2> padding, const std::uint64_t* and_mask, std::uint64_t* out,
                int num_threads, Isa isa, std::array<std::int64_t, 2> padding_end = {-1, -1});

// bmaxpool2d's rows [0, rows) of one image from a band of its input rows, on the calling
// thread (the fused pool of BinaryConv2d::run_threshold): band holds band_h rows of w
// pixels; pooled row r reads band rows from r * stride[0] - top (top >= 0: the pool's
// padding plus how far the band starts below the window of row 0, clipped to the band).
void bmaxpool2d_band(const std::uint64_t* band, std::int64_t band_h, std::int64_t w, std::int64_t words,
                     std::int64_t rows, std::int64_t ow, std::array<std::int64_t, 2> kernel,
                     std::array<std::int64_t, 2> stride, std::int64_t top, std::int64_t left,
                     const std::uint64_t* and_mask, std::uint64_t* out, Isa isa);

// (OH, OW) of bmaxpool2d; throws std::invalid_argument on bad parameters or sizes < 1.
std::array<std::int64_t, 2> bmaxpool2d_output_shape(std::int64_t h, std::int64_t w,
                                                    std::array<std::int64_t, 2> kernel,
                                                    std::array<std::int64_t, 2> stride,
                                                    std::array<std::int64_t, 2> padding,
                                                    std::array<std::int64_t, 2> padding_end = {-1, -1});

}  // namespace onebit
