// The ISA-independent part of the float convolution (fconv.h): weight packing, the driver
// (padded rows, segments, threads over output rows, the fused max-pool and output stage)
// and the standalone float pooling.
//
// Work decomposition: the output rows of the batch (after the pool, if any) are cut into
// tasks of consecutive rows, ~4 per thread, handed to the engine's pool. A task computes
// the conv rows it needs (a fused pool keeps the last KH_pool conv rows in a small ring,
// so rows shared by neighbouring pool windows are computed once per task), then pools
// and runs the output stage on them, writing its output rows. Every output value is
// computed by the same instruction sequence whatever the task shape, so one ISA gives the
// same bits for any thread count.
#include "fconv.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitpack.h"
#include "threadpool.h"

namespace onebit {

const FconvKernels& fconv_kernels(Isa isa) {
  switch (isa) {
    case Isa::avx512: return kFconvAvx512;
    case Isa::avx2: {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
      static const bool fma = __builtin_cpu_supports("fma");
      return fma ? kFconvAvx2 : kFconvScalar;
#else
      return kFconvAvx2;
#endif
    }
    case Isa::neon: break;  // no NEON variant: the scalar kernels (same bits)
    case Isa::scalar: break;
  }
  return kFconvScalar;
}

void FloatConv2d::Free::operator()(float* p) const noexcept { std::free(p); }

namespace {

void check_pair(const std::array<std::int64_t, 2>& v, std::int64_t low, const char* what) {
  if (v[0] < low || v[1] < low) {
    throw std::invalid_argument(std::string("FloatConv2d: ") + what + " must be >= " + std::to_string(low) + ", got (" +
                                std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")");
  }
}

}  // namespace

FloatConv2d::FloatConv2d(const float* w, std::int64_t out_channels, std::int64_t kh, std::int64_t kw,
                         std::int64_t in_channels, std::int64_t groups, std::array<std::int64_t, 2> stride,
                         std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> dilation, float pad_value,
                         std::array<std::int64_t, 2> padding_end)
    : o_(out_channels), kh_(kh), kw_(kw), c_(in_channels), groups_(groups), stride_(stride), padding_(padding),
      dilation_(dilation),
      padding_end_{padding_end[0] < 0 ? padding[0] : padding_end[0], padding_end[1] < 0 ? padding[1] : padding_end[1]},
      pad_value_(pad_value) {
  if (o_ < 1 || kh_ < 1 || kw_ < 1 || c_ < 1) {
    throw std::invalid_argument("FloatConv2d: out_channels, kernel and in_channels must be >= 1");
  }
  if (groups_ < 1 || c_ % groups_ != 0 || o_ % groups_ != 0) {
    throw std::invalid_argument("FloatConv2d: groups must be >= 1 and divide in_channels=" + std::to_string(c_) +
                                " and out_channels=" + std::to_string(o_) + ", got " + std::to_string(groups_));
  }
  check_pair(stride, 1, "stride");
  check_pair(dilation, 1, "dilation");
  check_pair(padding, 0, "padding");
  check_pair(padding_end_, 0, "padding_end");
  cg_ = c_ / groups_;
  og_ = o_ / groups_;
  kdim_ = kh_ * kw_ * cg_;
  depthwise_ = cg_ == 1 && og_ == 1;
  ogp_ = depthwise_ ? 1 : (og_ + kFconvPanel - 1) / kFconvPanel * kFconvPanel;
  const std::int64_t floats = depthwise_ ? kh_ * kw_ * c_ : groups_ * ogp_ * kdim_;
  const std::size_t bytes = (static_cast<std::size_t>(floats) * sizeof(float) + 63) / 64 * 64;
  auto* data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (data == nullptr) throw std::bad_alloc();
  w_.reset(data);
  std::memset(data, 0, bytes);
  if (depthwise_) {
    for (std::int64_t c = 0; c < c_; ++c)
      for (std::int64_t t = 0; t < kh_ * kw_; ++t) data[t * c_ + c] = w[c * kh_ * kw_ + t];
  } else {
    for (std::int64_t o = 0; o < o_; ++o) {
      const std::int64_t g = o / og_, jo = o % og_;
      float* panel = data + (g * ogp_ + jo / kFconvPanel * kFconvPanel) * kdim_;
      for (std::int64_t k = 0; k < kdim_; ++k) panel[k * kFconvPanel + jo % kFconvPanel] = w[o * kdim_ + k];
    }
  }
}

std::array<std::int64_t, 2> FloatConv2d::output_shape(std::int64_t h, std::int64_t w) const {
  const std::int64_t oh = (h + padding_[0] + padding_end_[0] - dilation_[0] * (kh_ - 1) - 1) / stride_[0] + 1;
  const std::int64_t ow = (w + padding_[1] + padding_end_[1] - dilation_[1] * (kw_ - 1) - 1) / stride_[1] + 1;
  if (h < 1 || w < 1 || oh < 1 || ow < 1) {
    throw std::invalid_argument("FloatConv2d: a " + std::to_string(h) + "x" + std::to_string(w) +
                                " input is too small for the kernel (" + std::to_string(kh_) + ", " +
                                std::to_string(kw_) + ") with this padding and dilation");
  }
  return {oh, ow};
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A thread's buffers, grown as needed and reused across calls.
struct Scratch {
  std::vector<float> padded, ring, vmax, pooled, z;
  std::vector<const float*> rows, seg, pool_rows;
  std::vector<std::int64_t> len, keys;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

}  // namespace

// One call's fixed state, shared by its tasks.
struct FconvRun {
  const FloatConv2d& cv;
  const float* x;
  std::int64_t n, h, w;
  const FconvStage& stage;
  const FconvPool& pool;
  void* out;
  const FconvKernels& kern;
  std::int64_t oh, ow, ph, pw;   // conv output, then the output (pooled) rows and columns
  std::int64_t ytot;             // floats per pixel of a conv row (channels with panel padding)
  std::int64_t wpad;             // padded input columns a conv row reads
  std::int64_t ring_rows;        // conv rows kept per task
  std::int64_t rows_per_task;
  std::vector<FconvProfile>* profiles;

  // The KH input rows of conv row r of image b: pointers into x, or into padded copies.
  void input_rows(Scratch& s, std::int64_t b, std::int64_t r) const {
    const std::int64_t c = cv.c_, pad = cv.padding_[1];
    s.rows.resize(static_cast<std::size_t>(cv.kh_));
    s.padded.resize(static_cast<std::size_t>(cv.kh_ * wpad * c));
    for (std::int64_t i = 0; i < cv.kh_; ++i) {
      const std::int64_t ih = r * cv.stride_[0] - cv.padding_[0] + i * cv.dilation_[0];
      const bool inside = ih >= 0 && ih < h;
      const float* src = x + (b * h + (inside ? ih : 0)) * w * c;
      if (inside && pad == 0 && wpad <= w) {  // a row read in place (no padding after it either)
        s.rows[static_cast<std::size_t>(i)] = src;
        continue;
      }
      float* dst = s.padded.data() + i * wpad * c;
      const std::int64_t left = std::min(pad, wpad), mid = inside ? std::clamp<std::int64_t>(wpad - pad, 0, w) : 0;
      std::fill(dst, dst + left * c, cv.pad_value_);
      if (mid > 0) std::memcpy(dst + left * c, src, static_cast<std::size_t>(mid * c) * sizeof(float));
      std::fill(dst + (left + mid) * c, dst + wpad * c, cv.pad_value_);
      s.rows[static_cast<std::size_t>(i)] = dst;
    }
  }

  // Conv row r of image b, written as base says for group 0 (raw: y is a row buffer of
  // ow x ytot; stage / bits: y is the output row); the other groups are offset from it.
  void conv_row(Scratch& s, std::int64_t b, std::int64_t r, const FconvOut& base, FconvProfile* prof) const {
    const auto t0 = prof ? Clock::now() : Clock::time_point{};
    input_rows(s, b, r);
    const auto t1 = prof ? Clock::now() : Clock::time_point{};
    const std::int64_t c = cv.c_, sw = cv.stride_[1], dw = cv.dilation_[1];
    if (cv.depthwise_) {
      kern.depthwise(s.rows.data(), ow, c, cv.kh_, cv.kw_, sw, dw, cv.w_.get(), static_cast<float*>(base.y));
    } else {
      const std::int64_t panels = cv.ogp_ / kFconvPanel;
      const bool merged = dw == 1 && cv.groups_ == 1;  // one segment per kernel row
      const std::int64_t nseg = merged ? cv.kh_ : cv.kh_ * cv.kw_;
      s.seg.resize(static_cast<std::size_t>(nseg));
      s.len.resize(static_cast<std::size_t>(nseg));
      for (std::int64_t g = 0; g < cv.groups_; ++g) {
        for (std::int64_t i = 0; i < cv.kh_; ++i) {
          const float* row = s.rows[static_cast<std::size_t>(i)];
          if (merged) {
            s.seg[static_cast<std::size_t>(i)] = row;
            s.len[static_cast<std::size_t>(i)] = cv.kw_ * c;
            continue;
          }
          for (std::int64_t j = 0; j < cv.kw_; ++j) {
            s.seg[static_cast<std::size_t>(i * cv.kw_ + j)] = row + j * dw * c + g * cv.cg_;
            s.len[static_cast<std::size_t>(i * cv.kw_ + j)] = cv.cg_;
          }
        }
        FconvOut o = base;
        if (base.kind == FconvOut::raw) {
          o.y = static_cast<float*>(base.y) + g * cv.ogp_;
        } else {
          o.scale += g * cv.ogp_;
          o.bias += g * cv.ogp_;
          o.y = base.kind == FconvOut::bits ? static_cast<void*>(static_cast<std::uint16_t*>(base.y) + g * cv.og_ / kFconvPanel)
                                            : static_cast<void*>(static_cast<float*>(base.y) + g * cv.og_);
        }
        kern.gemm(s.seg.data(), s.len.data(), nseg, ow, sw * c, cv.w_.get() + g * cv.ogp_ * cv.kdim_, cv.kdim_, panels,
                  o);
      }
    }
    if (prof) {
      prof->prep_s += std::chrono::duration<double>(t1 - t0).count();
      prof->gemm_s += seconds_since(t1);
    }
  }

  FconvOut raw_out(float* y) const {
    FconvOut o;
    o.y = y;
    o.ldy = ytot;
    return o;
  }

  // The conv rows of output row pr's pool window (image b), computed into the ring where it
  // does not hold them yet: s.pool_rows[0 .. returned count).
  std::size_t window_rows(Scratch& s, std::int64_t b, std::int64_t pr, FconvProfile* prof) const {
    std::vector<const float*>& rows = s.pool_rows;
    rows.resize(static_cast<std::size_t>(pool.kernel[0]));
    std::size_t nrows = 0;
    for (std::int64_t i = 0; i < pool.kernel[0]; ++i) {
      const std::int64_t cr = pr * pool.stride[0] - pool.padding[0] + i;
      if (cr < 0 || cr >= oh) continue;
      const std::int64_t slot = cr % ring_rows, key = b * oh + cr;
      float* row = s.ring.data() + slot * ow * ytot;
      if (s.keys[static_cast<std::size_t>(slot)] != key) {
        conv_row(s, b, cr, raw_out(row), prof);
        s.keys[static_cast<std::size_t>(slot)] = key;
      }
      rows[nrows++] = row;
    }
    return nrows;
  }

  // Max over the pool window of the ring's conv rows: output row pr of image b into s.pooled.
  const float* pooled_row(Scratch& s, std::int64_t b, std::int64_t pr, FconvProfile* prof) const {
    const std::size_t nrows = window_rows(s, b, pr, prof);
    const std::vector<const float*>& rows = s.pool_rows;
    const auto t0 = prof ? Clock::now() : Clock::time_point{};
    // Separable: the max over the window's rows (whole rows at once), then over its columns.
    float* vmax = s.vmax.data();
    std::memcpy(vmax, rows[0], static_cast<std::size_t>(ow * ytot) * sizeof(float));
    for (std::size_t i = 1; i < nrows; ++i) kern.max(vmax, rows[i], ow * ytot);
    for (std::int64_t q = 0; q < pw; ++q) {
      float* dst = s.pooled.data() + q * ytot;
      bool first = true;
      for (std::int64_t j = 0; j < pool.kernel[1]; ++j) {
        const std::int64_t cc = q * pool.stride[1] - pool.padding[1] + j;
        if (cc < 0 || cc >= ow) continue;
        if (first) {
          std::memcpy(dst, vmax + cc * ytot, static_cast<std::size_t>(ytot) * sizeof(float));
          first = false;
        } else {
          kern.max(dst, vmax + cc * ytot, ytot);
        }
      }
    }
    if (prof) prof->stage_s += seconds_since(t0);
    return s.pooled.data();
  }

  // The output stage of one row of pw pixels (ytot floats each) into output row gr.
  void stage_row(Scratch& s, const float* y, std::int64_t gr, FconvProfile* prof) const {
    const auto t0 = prof ? Clock::now() : Clock::time_point{};
    const std::int64_t o = cv.o_;
    // Channel blocks: groups x og channels at stride ogp (depthwise: one block of C).
    const std::int64_t blocks = cv.depthwise_ ? 1 : cv.groups_, og = cv.depthwise_ ? o : cv.og_;
    const std::int64_t ogp = cv.depthwise_ ? o : cv.ogp_;
    float* z = stage.bits ? s.z.data() : static_cast<float*>(out) + gr * pw * o;
    for (std::int64_t q = 0; q < pw; ++q) {
      for (std::int64_t g = 0; g < blocks; ++g) {
        const float* __restrict v = y + q * ytot + g * ogp;
        float* __restrict d = z + q * o + g * og;
        if (stage.scale == nullptr) {
          std::memcpy(d, v, static_cast<std::size_t>(og) * sizeof(float));
          continue;
        }
        const float* __restrict sc = stage.scale + g * og;
        const float* __restrict bi = stage.bias + g * og;
        // Product and sum in two passes: two roundings, as specified, even where the
        // compiler would contract a * b + c into an FMA (baselines with FMA: AArch64).
        for (std::int64_t k = 0; k < og; ++k) d[k] = v[k] * sc[k];
        for (std::int64_t k = 0; k < og; ++k) d[k] += bi[k];
        if (stage.act == FconvAct::relu) {
          for (std::int64_t k = 0; k < og; ++k) d[k] = d[k] > 0.0f ? d[k] : 0.0f;
        } else if (stage.act == FconvAct::hardtanh) {
          for (std::int64_t k = 0; k < og; ++k) {
            const float t = d[k] > -1.0f ? d[k] : -1.0f;
            d[k] = t < 1.0f ? t : 1.0f;
          }
        }
      }
    }
    if (stage.bits) {
      bitpack_kernels(isa_for_pack).pack(z, pw, o, static_cast<std::uint64_t*>(out) + gr * pw * words_for(o));
    }
    if (prof) prof->stage_s += seconds_since(t0);
  }

  Isa isa_for_pack;
  // The fused output stage (no pool, not depthwise): scale and bias padded per group to
  // ogp entries; empty when the stage runs separately.
  const std::vector<float>& fused_scale;
  const std::vector<float>& fused_bias;

  void task(std::int64_t t, int thread) const {
    Scratch& s = scratch();
    FconvProfile* prof = profiles ? &(*profiles)[static_cast<std::size_t>(thread)] : nullptr;
    const std::int64_t r0 = t * rows_per_task, r1 = std::min(n * ph, r0 + rows_per_task);
    const std::int64_t o = cv.o_;
    if (!fused_scale.empty()) {
      FconvOut out_row;
      out_row.kind = stage.bits ? FconvOut::bits : FconvOut::stage;
      out_row.scale = fused_scale.data();
      out_row.bias = fused_bias.data();
      out_row.act = stage.act;
      out_row.cols = cv.og_;
      const std::int64_t u16 = 4 * words_for(o);  // uint16 per output pixel
      out_row.ldy = stage.bits ? u16 : o;
      for (std::int64_t gr = r0; gr < r1; ++gr) {
        if (stage.bits) {
          auto* y = static_cast<std::uint16_t*>(out) + gr * ow * u16;
          out_row.y = y;
          const std::int64_t used = (o + kFconvPanel - 1) / kFconvPanel;  // written by the kernel
          for (std::int64_t q = 0; q < ow && used < u16; ++q) {
            std::memset(y + q * u16 + used, 0, static_cast<std::size_t>(u16 - used) * sizeof(std::uint16_t));
          }
        } else {
          out_row.y = static_cast<float*>(out) + gr * ow * o;
        }
        conv_row(s, gr / oh, gr % oh, out_row, prof);
      }
      return;
    }
    s.ring.resize(static_cast<std::size_t>(ring_rows * ow * ytot));
    s.keys.assign(static_cast<std::size_t>(ring_rows), -1);
    // One channel block (groups = 1, or depthwise): the pool and the stage in one kernel pass.
    const bool one_pass = pool.on && (cv.groups_ == 1 || cv.depthwise_);
    if (pool.on && !one_pass) {
      s.vmax.resize(static_cast<std::size_t>(ow * ytot));
      s.pooled.resize(static_cast<std::size_t>(pw * ytot));
    }
    if (stage.bits) s.z.resize(static_cast<std::size_t>(pw * o));
    for (std::int64_t gr = r0; gr < r1; ++gr) {
      const std::int64_t b = gr / ph, r = gr % ph;
      if (one_pass) {
        const std::size_t nrows = window_rows(s, b, r, prof);
        const auto t0 = prof ? Clock::now() : Clock::time_point{};
        float* z = stage.bits ? s.z.data() : static_cast<float*>(out) + gr * pw * o;
        kern.pool_stage(s.pool_rows.data(), static_cast<std::int64_t>(nrows), ow, ytot, pw, pool.kernel[1],
                        pool.stride[1], pool.padding[1], stage.scale, stage.bias, stage.act, o, z);
        if (stage.bits) {
          bitpack_kernels(isa_for_pack).pack(z, pw, o, static_cast<std::uint64_t*>(out) + gr * pw * words_for(o));
        }
        if (prof) prof->stage_s += seconds_since(t0);
        continue;
      }
      const float* y;
      if (pool.on) {
        y = pooled_row(s, b, r, prof);
      } else {
        conv_row(s, b, r, raw_out(s.ring.data()), prof);
        y = s.ring.data();
      }
      stage_row(s, y, gr, prof);
    }
  }
};

namespace {

void fconv_task(void* ctx, std::int64_t task, int thread) { static_cast<const FconvRun*>(ctx)->task(task, thread); }

// Each thread's share of the (estimated, single-thread) work must be at least this; the
// estimate goes to parallel_run, which shares jobs under ~100 us only with awake workers.
constexpr double kMinMicrosPerThread = 8.0;
// The estimate's corrections to the GEMM rate (measured on QuickNet's stem and transitions,
// one core, AVX-512): a depthwise conv reuses no loaded input across output channels, one
// FMA per loaded vector (its 8- and 32-channel stride-2 convs: 226 K MACs in 27-47 us, about
// a sixteenth of the GEMM's rate); and every output costs its store and stage, ~0.25 ns
// (1x1 convs of 8 and 32 input channels: 22-25 us for 50-100 K outputs, 3-4x the MAC
// estimate). Without them those convs were planned as 2-8 us jobs and ran on one thread.
constexpr double kDepthwiseSlowdown = 16.0;
constexpr double kOutputsPerMicro = 4000.0;

int plan_threads(double micros, int num_threads) {
  return static_cast<int>(std::clamp<double>(micros / kMinMicrosPerThread, 1.0, std::max(num_threads, 1)));
}

}  // namespace

void FloatConv2d::run(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, const FconvStage& stage,
                      const FconvPool& pool, void* out, int num_threads, Isa isa, FconvProfile* profile) const {
  const FconvKernels& kern = fconv_kernels(isa);
  if (kern.gemm == nullptr) {
    throw std::invalid_argument(std::string("FloatConv2d: ISA ") + isa_name(isa) + " is not compiled in");
  }
  const auto shape = output_shape(h, w);
  std::array<std::int64_t, 2> pshape = shape;
  if (pool.on) {
    pshape = fpool2d_output_shape(shape[0], shape[1], pool.kernel, pool.stride, pool.padding, pool.padding_end);
  }
  if (n <= 0) return;
  const std::int64_t wpad = (shape[1] - 1) * stride_[1] + (kw_ - 1) * dilation_[1] + 1;
  const double outputs = static_cast<double>(n * shape[0] * shape[1]) * static_cast<double>(o_);
  const double macs = outputs * static_cast<double>(kh_ * kw_ * cg_);
  const double micros = macs / (depthwise_ ? kern.macs_per_us / kDepthwiseSlowdown : kern.macs_per_us) +
                        outputs / kOutputsPerMicro;
  const int threads = plan_threads(micros, num_threads);
  const std::int64_t rows = n * pshape[0];
  const std::int64_t tasks_wanted = threads > 1 ? 4 * static_cast<std::int64_t>(threads) : 1;
  const std::int64_t per_task = (rows + tasks_wanted - 1) / tasks_wanted;
  const std::int64_t tasks = (rows + per_task - 1) / per_task;
  std::vector<FconvProfile> profiles(profile ? static_cast<std::size_t>(threads) : 0);
  std::vector<float> fused_scale, fused_bias;
  if (!pool.on && !depthwise_ && stage.scale != nullptr && (groups_ == 1 || og_ % kFconvPanel == 0)) {
    fused_scale.assign(static_cast<std::size_t>(groups_ * ogp_), 0.0f);
    fused_bias.assign(static_cast<std::size_t>(groups_ * ogp_), 0.0f);
    for (std::int64_t oc = 0; oc < o_; ++oc) {
      const auto at = static_cast<std::size_t>(oc / og_ * ogp_ + oc % og_);
      fused_scale[at] = stage.scale[oc];
      fused_bias[at] = stage.bias[oc];
    }
  }
  const FconvRun job{*this,
                     x,
                     n,
                     h,
                     w,
                     stage,
                     pool,
                     out,
                     kern,
                     shape[0],
                     shape[1],
                     pshape[0],
                     pshape[1],
                     depthwise_ ? c_ : groups_ * ogp_,
                     wpad,
                     pool.on ? pool.kernel[0] : 1,
                     per_task,
                     profile ? &profiles : nullptr,
                     isa,
                     fused_scale,
                     fused_bias};
  parallel_run(static_cast<int>(std::min<std::int64_t>(threads, tasks)), tasks, fconv_task,
               const_cast<FconvRun*>(&job), micros);
  for (const FconvProfile& p : profiles) {
    profile->prep_s += p.prep_s;
    profile->gemm_s += p.gemm_s;
    profile->stage_s += p.stage_s;
  }
}

// ---- standalone float pooling ----

std::array<std::int64_t, 2> fpool2d_output_shape(std::int64_t h, std::int64_t w, std::array<std::int64_t, 2> kernel,
                                                 std::array<std::int64_t, 2> stride,
                                                 std::array<std::int64_t, 2> padding,
                                                 std::array<std::int64_t, 2> padding_end) {
  if (padding_end[0] < 0 && padding_end[1] < 0) padding_end = padding;
  for (int d = 0; d < 2; ++d) {
    if (kernel[d] < 1 || stride[d] < 1 || padding[d] < 0 || 2 * padding[d] > kernel[d] || padding_end[d] < 0 ||
        2 * padding_end[d] > kernel[d]) {
      throw std::invalid_argument("pool: kernel >= 1, stride >= 1 and 0 <= 2 * padding, 2 * padding_end <= kernel "
                                  "needed, got kernel (" +
                                  std::to_string(kernel[0]) + ", " + std::to_string(kernel[1]) + "), stride (" +
                                  std::to_string(stride[0]) + ", " + std::to_string(stride[1]) + "), padding (" +
                                  std::to_string(padding[0]) + ", " + std::to_string(padding[1]) + "), padding_end (" +
                                  std::to_string(padding_end[0]) + ", " + std::to_string(padding_end[1]) + ")");
    }
  }
  // The window loops clip at the image's end, so padding_end only sets the output size.
  const std::int64_t span_h = h + padding[0] + padding_end[0] - kernel[0];
  const std::int64_t span_w = w + padding[1] + padding_end[1] - kernel[1];
  const std::int64_t ph = span_h < 0 ? 0 : span_h / stride[0] + 1;  // < 0: the kernel does not fit (no truncation)
  const std::int64_t pw = span_w < 0 ? 0 : span_w / stride[1] + 1;
  if (h < 1 || w < 1 || ph < 1 || pw < 1) {
    throw std::invalid_argument("pool: kernel (" + std::to_string(kernel[0]) + ", " + std::to_string(kernel[1]) +
                                ") does not fit a " + std::to_string(h) + "x" + std::to_string(w) + " input");
  }
  return {ph, pw};
}

namespace {

struct PoolJob {
  const float* x;
  std::int64_t h, w, c, ph, pw, rows_per_task, total;
  std::array<std::int64_t, 2> kernel, stride, padding;
  bool mean;
  float* out;
  FconvMaxFn max;
  float* rows;  // max: one row of w * c floats per thread
};

// Max: per output row, the max of its kernel rows over the whole row first (kh - 1 calls of
// the ISA's max on w * c floats), then of each window's columns in that row (a stride of 1:
// kw - 1 calls on the whole output row; else per pixel). The same maximum as the windows one
// by one, up to the sign of a zero (max(-0, +0) keeps whichever came first) and which NaN.
void max_rows_task(const PoolJob& j, std::int64_t r0, std::int64_t r1, int thread) {
  const std::int64_t row = j.w * j.c;
  float* v = j.rows + thread * row;
  for (std::int64_t gr = r0; gr < r1; ++gr) {
    const std::int64_t b = gr / j.ph, r = gr % j.ph;
    const std::int64_t i0 = std::max<std::int64_t>(0, r * j.stride[0] - j.padding[0]);
    const std::int64_t i1 = std::min(j.h, r * j.stride[0] - j.padding[0] + j.kernel[0]);
    const float* image = j.x + b * j.h * row;
    std::memcpy(v, image + i0 * row, static_cast<std::size_t>(row) * sizeof(float));
    for (std::int64_t i = i0 + 1; i < i1; ++i) j.max(v, image + i * row, row);
    float* dst = j.out + gr * j.pw * j.c;
    // Output columns whose window lies inside the row: [q0, q1).
    const std::int64_t sw = j.stride[1], pwd = j.padding[1], kw = j.kernel[1];
    const std::int64_t q0 = std::min(j.pw, (pwd + sw - 1) / sw);
    const std::int64_t span = j.w - kw + pwd;  // the last inside window starts at span (floor, not truncation)
    const std::int64_t q1 = span < 0 ? q0 : std::max(q0, std::min(j.pw, span / sw + 1));
    auto window = [&](std::int64_t q) {  // one output pixel, its columns clipped to the row
      const std::int64_t k0 = std::max<std::int64_t>(0, q * sw - pwd), k1 = std::min(j.w, q * sw - pwd + kw);
      float* d = dst + q * j.c;
      std::memcpy(d, v + k0 * j.c, static_cast<std::size_t>(j.c) * sizeof(float));
      for (std::int64_t k = k0 + 1; k < k1; ++k) j.max(d, v + k * j.c, j.c);
    };
    for (std::int64_t q = 0; q < q0; ++q) window(q);
    if (sw == 1 && q1 > q0) {
      const std::int64_t n = (q1 - q0) * j.c, base = (q0 - pwd) * j.c;
      std::memcpy(dst + q0 * j.c, v + base, static_cast<std::size_t>(n) * sizeof(float));
      for (std::int64_t k = 1; k < kw; ++k) j.max(dst + q0 * j.c, v + base + k * j.c, n);
    } else {
      for (std::int64_t q = q0; q < q1; ++q) window(q);
    }
    for (std::int64_t q = q1; q < j.pw; ++q) window(q);
  }
}

void pool_task(void* ctx, std::int64_t task, int thread) {
  const PoolJob& j = *static_cast<const PoolJob*>(ctx);
  if (!j.mean) {
    max_rows_task(j, task * j.rows_per_task, std::min(j.total, (task + 1) * j.rows_per_task), thread);
    return;
  }
  const float inv = 1.0f / static_cast<float>(j.kernel[0] * j.kernel[1]);
  const std::int64_t r0 = task * j.rows_per_task, r1 = std::min(j.total, r0 + j.rows_per_task);
  for (std::int64_t gr = r0; gr < r1; ++gr) {
    const std::int64_t b = gr / j.ph, r = gr % j.ph;
    for (std::int64_t q = 0; q < j.pw; ++q) {
      float* __restrict dst = j.out + (gr * j.pw + q) * j.c;
      bool first = true;
      for (std::int64_t i = 0; i < j.kernel[0]; ++i) {
        const std::int64_t ih = r * j.stride[0] - j.padding[0] + i;
        if (ih < 0 || ih >= j.h) continue;
        for (std::int64_t k = 0; k < j.kernel[1]; ++k) {
          const std::int64_t iw = q * j.stride[1] - j.padding[1] + k;
          if (iw < 0 || iw >= j.w) continue;
          const float* __restrict src = j.x + ((b * j.h + ih) * j.w + iw) * j.c;
          if (first) {
            std::memcpy(dst, src, static_cast<std::size_t>(j.c) * sizeof(float));
            first = false;
          } else if (j.mean) {
            for (std::int64_t e = 0; e < j.c; ++e) dst[e] += src[e];
          } else {
            j.max(dst, src, j.c);
          }
        }
      }
      if (j.mean) {
        for (std::int64_t e = 0; e < j.c; ++e) dst[e] *= inv;
      }
    }
  }
}

}  // namespace

namespace {

// Runs a pool job over the n * PH output rows: tasks of whole rows, about 4 per thread,
// with floats_per_thread of scratch rows for each thread that runs. Per call, not
// thread_local: a thread_local with a destructor on a Python caller thread is freed at thread
// exit in a way ThreadSanitizer cannot order (see bgemm_float).
void run_pool(PoolJob job, std::int64_t n, double micros, int num_threads, std::int64_t floats_per_thread) {
  const int threads = plan_threads(micros, num_threads);
  job.total = n * job.ph;
  const std::int64_t wanted = threads > 1 ? 4 * static_cast<std::int64_t>(threads) : 1;
  job.rows_per_task = (job.total + wanted - 1) / wanted;
  const std::int64_t tasks = (job.total + job.rows_per_task - 1) / job.rows_per_task;
  const int used = static_cast<int>(std::min<std::int64_t>(threads, tasks));
  std::vector<float> rows(static_cast<std::size_t>(used * floats_per_thread));
  job.rows = rows.data();
  parallel_run(used, tasks, pool_task, &job, micros);
}

}  // namespace

void fpool2d(const float* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
             std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
             std::array<std::int64_t, 2> padding, bool mean, float* out, int num_threads,
             std::array<std::int64_t, 2> padding_end, Isa isa) {
  const auto shape = fpool2d_output_shape(h, w, kernel, stride, padding, padding_end);
  if (n <= 0 || c <= 0) return;
  // ~2 floats per ns on one core.
  const double micros = static_cast<double>(n * shape[0] * shape[1] * c * kernel[0] * kernel[1]) / 2000.0;
  const PoolJob job{x, h, w, c, shape[0], shape[1], 0, 0, kernel, stride, padding, mean, out, fconv_kernels(isa).max,
                    nullptr};
  run_pool(job, n, micros, num_threads, mean ? 0 : w * c);
}

// ---- DenseNet transitions ----

namespace {

struct AffinePoolJob {
  const float* const* parts;
  const std::int64_t* channels;
  const std::int64_t* offsets;  // each part's first channel in the output
  int n_parts;
  std::int64_t h, w, c, ph, pw, rows_per_task, total;
  const float* scale;
  const float* bias;
  std::array<std::int64_t, 2> kernel, stride, padding;
  bool relu;
  float* out;
  FconvAffinePoolFn kern;
};

void affine_pool_task(void* ctx, std::int64_t task, int /*thread*/) {
  const AffinePoolJob& j = *static_cast<const AffinePoolJob*>(ctx);
  const std::int64_t r0 = task * j.rows_per_task, r1 = std::min(j.total, r0 + j.rows_per_task);
  std::vector<const float*> rows(static_cast<std::size_t>(j.kernel[0]));
  for (std::int64_t gr = r0; gr < r1; ++gr) {
    const std::int64_t b = gr / j.ph, r = gr % j.ph;
    const std::int64_t i0 = std::max<std::int64_t>(0, r * j.stride[0] - j.padding[0]);
    const std::int64_t i1 = std::min(j.h, r * j.stride[0] - j.padding[0] + j.kernel[0]);
    for (int k = 0; k < j.n_parts; ++k) {
      const std::int64_t ck = j.channels[k];
      for (std::int64_t i = i0; i < i1; ++i) rows[static_cast<std::size_t>(i - i0)] = j.parts[k] + (b * j.h + i) * j.w * ck;
      j.kern(rows.data(), i1 - i0, j.w, ck, ck, j.pw, j.kernel[1], j.stride[1], j.padding[1], j.scale + j.offsets[k],
             j.bias + j.offsets[k], j.relu, j.out + gr * j.pw * j.c + j.offsets[k], j.c);
    }
  }
}

}  // namespace

void faffine_maxpool_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t n,
                           std::int64_t h, std::int64_t w, const float* scale, const float* bias,
                           std::array<std::int64_t, 2> kernel, std::array<std::int64_t, 2> stride,
                           std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> padding_end, bool relu,
                           float* out, int num_threads, Isa isa) {
  const auto shape = fpool2d_output_shape(h, w, kernel, stride, padding, padding_end);
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(n_parts));
  std::int64_t c = 0;
  for (int k = 0; k < n_parts; ++k) {
    offsets[static_cast<std::size_t>(k)] = c;
    c += channels[k];
  }
  if (n <= 0 || c <= 0) return;
  // About a tenth of a nanosecond per input float on one Zen 5 core (the affine, the max).
  const double micros = static_cast<double>(n * h * w * c) / 8000.0;
  AffinePoolJob job{parts, channels, offsets.data(), n_parts, h, w, c, shape[0], shape[1], 0, n * shape[0], scale,
                    bias, kernel, stride, padding, relu, out, fconv_kernels(isa).affine_pool};
  const int threads = plan_threads(micros, num_threads);
  const std::int64_t wanted = threads > 1 ? 4 * static_cast<std::int64_t>(threads) : 1;
  job.rows_per_task = (job.total + wanted - 1) / wanted;
  const std::int64_t tasks = (job.total + job.rows_per_task - 1) / job.rows_per_task;
  parallel_run(static_cast<int>(std::min<std::int64_t>(threads, tasks)), tasks, affine_pool_task, &job, micros);
}

}  // namespace onebit
