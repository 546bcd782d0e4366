// Per-channel elementwise steps (channel_ops.h). One always_inline body per step,
// instantiated by TU-local wrappers, the baseline one and two with
// __attribute__((target(...))) that the dispatcher's ISA picks (the bmaxpool.cpp pattern):
// plain loops the compiler vectorizes at each width.
#include "channel_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "bitpack.h"
#include "threadpool.h"

namespace onebit {

namespace {

// Rough single-thread speed in floats per microsecond (L2-resident rows on a Zen 5 core),
// only used for the thread count; each thread must get at least kMinMicrosPerThread.
constexpr double kFloatsPerMicro = 4000.0;
constexpr double kMinMicrosPerThread = 8.0;
constexpr double kPartRowsPerMicro = 500.0;

enum class Step { affine, prelu, add, pack_shifted, pack_parts, affine_parts, clip, relu, sigmoid, gate, planes, concat_bits, affine_mean_sign };

struct Job {
  Step step;
  const float* x;
  const float* y;  // add: b
  const float* p0;  // affine: scale; prelu: shift_in; pack_shifted, pack_parts: shift
  const float* p1;  // affine: bias; prelu: slope; pack_parts: scale
  const float* p2;  // prelu: shift_out; pack_parts: bias
  float* out;
  std::uint64_t* bits;
  std::int64_t rows, c, tasks;
  Isa isa;
  // pack_parts: the parts (c: their channels in all)
  const float* const* parts = nullptr;
  const std::int64_t* part_channels = nullptr;
  int n_parts = 0;
  float low = 0.0f, high = 0.0f;  // clip
  std::int64_t hw = 1;            // gate: rows per sample
  // planes: per plane, the scale, bias and shift vectors (each may be null)
  const float* const* plane_scale = nullptr;
  const float* const* plane_bias = nullptr;
  const float* const* plane_shift = nullptr;
  int n_planes = 0;
  // concat_bits: the parts (c: out words per row)
  const std::uint64_t* const* bit_src = nullptr;
  const std::int64_t* bit_stride = nullptr;
  const std::int64_t* bit_offset = nullptr;
  const std::int64_t* bit_count = nullptr;
};

__attribute__((always_inline)) inline void affine_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c;
  for (std::int64_t r = r0; r < r1; ++r) {
    const float* __restrict x = j.x + r * c;
    float* __restrict o = j.out + r * c;
    const float* __restrict s = j.p0;
    const float* __restrict b = j.p1;
    for (std::int64_t k = 0; k < c; ++k) {
      const float z = x[k] * s[k];
      o[k] = z + b[k];
    }
  }
}

__attribute__((always_inline)) inline void prelu_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c;
  for (std::int64_t r = r0; r < r1; ++r) {
    const float* __restrict x = j.x + r * c;
    float* __restrict o = j.out + r * c;
    const float* __restrict si = j.p0;
    const float* __restrict sl = j.p1;
    const float* __restrict so = j.p2;
    for (std::int64_t k = 0; k < c; ++k) {
      const float z = x[k] - si[k];
      const float pos = z > 0.0f ? z : 0.0f;
      const float neg = (z < 0.0f ? z : 0.0f) * sl[k];
      const float v = pos + neg;
      o[k] = v + so[k];
    }
  }
}

// Rows here are flat: [r0, r1) indexes elements.
__attribute__((always_inline)) inline void add_range(const Job& j, std::int64_t i0, std::int64_t i1) {
  const float* __restrict a = j.x;
  const float* __restrict b = j.y;
  float* __restrict o = j.out;
  for (std::int64_t i = i0; i < i1; ++i) o[i] = a[i] + b[i];
}

// Packs rows [r0, r1) of x - shift, the differences never stored (the ISA's pack_affine).
__attribute__((always_inline)) inline void shifted_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c, words = words_for(c);
  bitpack_kernels(j.isa).pack_affine(j.x + r0 * c, r1 - r0, c, c, nullptr, nullptr, j.p0, j.bits + r0 * words, words);
}

// Row r of the parts' channel concatenation into d (c floats), through the affine if given.
__attribute__((always_inline)) inline void join_row(const Job& j, std::int64_t r, float* __restrict d) {
  std::int64_t at = 0;
  for (int i = 0; i < j.n_parts; ++i) {
    const std::int64_t ci = j.part_channels[i];
    const float* __restrict x = j.parts[i] + r * ci;
    float* __restrict o = d + at;
    if (j.p1 != nullptr) {  // affine; the per-channel vectors span the concatenation
      const float* __restrict s = j.p1 + at;
      const float* __restrict b = j.p2 + at;
      for (std::int64_t k = 0; k < ci; ++k) {
        const float z = x[k] * s[k];
        o[k] = z + b[k];
      }
    } else {
      for (std::int64_t k = 0; k < ci; ++k) o[k] = x[k];
    }
    at += ci;
  }
}

// Rows [r0, r1) of the parts' packed signs (through the affine and the shift) side by side:
// a part that starts at a word boundary is packed in place; one that does not is packed into
// a buffer and shifted into place (the earlier parts' bits are already there, the rest 0).
__attribute__((always_inline)) inline void parts_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t words = words_for(j.c), rows = r1 - r0;
  const PackAffineRowsFn pack = bitpack_kernels(j.isa).pack_affine;
  std::uint64_t* out = j.bits + r0 * words;
  std::vector<std::uint64_t> tmp;
  std::int64_t at = 0;
  for (int i = 0; i < j.n_parts; ++i) {
    const std::int64_t ci = j.part_channels[i], nw = words_for(ci);
    const float* x = j.parts[i] + r0 * ci;
    const float* s = j.p1 != nullptr ? j.p1 + at : nullptr;
    const float* b = j.p1 != nullptr ? j.p2 + at : nullptr;
    const float* sh = j.p0 != nullptr ? j.p0 + at : nullptr;
    const std::int64_t w0 = at / 64;
    const int shift = static_cast<int>(at % 64);
    if (shift == 0) {
      pack(x, rows, ci, ci, s, b, sh, out + w0, words);
    } else {
      tmp.resize(static_cast<std::size_t>(rows * nw));
      pack(x, rows, ci, ci, s, b, sh, tmp.data(), nw);
      for (std::int64_t r = 0; r < rows; ++r) {
        std::uint64_t* o = out + r * words + w0;
        const std::uint64_t* t = tmp.data() + r * nw;
        const std::int64_t last = words_for(at + ci) - 1 - w0;  // o's last word this part reaches
        for (std::int64_t w = 1; w <= last; ++w) o[w] = 0;
        for (std::int64_t w = 0; w < nw; ++w) {
          o[w] |= t[w] << shift;
          if (w + 1 <= last) o[w + 1] |= t[w] >> (64 - shift);
        }
      }
    }
    at += ci;
  }
}

// Rows [r0, r1) of x packed under each plane's vectors (the ISA's pack_affine, as parts_rows).
__attribute__((always_inline)) inline void planes_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c, words = words_for(c), ldo = j.n_planes * words;
  const PackAffineRowsFn pack = bitpack_kernels(j.isa).pack_affine;
  for (int p = 0; p < j.n_planes; ++p) {
    pack(j.x + r0 * c, r1 - r0, c, c, j.plane_scale[p], j.plane_bias[p], j.plane_shift[p],
         j.bits + r0 * ldo + p * words, ldo);
  }
}

// Rows [r0, r1) of the parts' bit strings joined (c: out words per row), row by row.
__attribute__((always_inline)) inline void concat_bits_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  struct Part {
    const std::uint64_t* src;
    std::int64_t stride, words, w0, last;  // last: the last out word (from w0) the part reaches
    int shift;
  };
  std::vector<Part> parts(static_cast<std::size_t>(j.n_parts));
  std::int64_t at = 0;
  for (int i = 0; i < j.n_parts; ++i) {
    const std::int64_t w0 = at >> 6;
    parts[static_cast<std::size_t>(i)] = {j.bit_src[i] + j.bit_offset[i], j.bit_stride[i], words_for(j.bit_count[i]),
                                          w0, words_for(at + j.bit_count[i]) - 1 - w0, static_cast<int>(at & 63)};
    at += j.bit_count[i];
  }
  const std::int64_t ow = j.c;
  for (std::int64_t r = r0; r < r1; ++r) {
    std::uint64_t* row = j.bits + r * ow;
    for (const Part& p : parts) {
      const std::uint64_t* src = p.src + r * p.stride;
      std::uint64_t* o = row + p.w0;
      if (p.shift == 0) {
        o[0] = src[0];
        for (std::int64_t w = 1; w < p.words; ++w) o[w] = src[w];
        continue;
      }
      for (std::int64_t w = 1; w <= p.last; ++w) o[w] = 0;  // o[0] holds the earlier parts' bits
      for (std::int64_t w = 0; w < p.words; ++w) {
        o[w] |= src[w] << p.shift;
        if (w + 1 <= p.last) o[w + 1] |= src[w] >> (64 - p.shift);
      }
    }
  }
}

// Tasks [r0, r1) of (sample, 64-channel word): the word's sign bits for every row of the
// sample (pack_affine), and its channels' means (hw: rows per sample; out: the means).
__attribute__((always_inline)) inline void affine_mean_sign_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c, words = words_for(c), hw = j.hw;
  const PackAffineRowsFn pack = bitpack_kernels(j.isa).pack_affine;
  const float inv = 1.0f / static_cast<float>(hw);
  float acc[64];
  for (std::int64_t t = r0; t < r1; ++t) {
    const std::int64_t b = t / words, w = t % words, k0 = 64 * w, len = std::min<std::int64_t>(64, c - k0);
    const float* xb = j.x + b * hw * c + k0;
    const float* __restrict s = j.p1 + k0;
    const float* __restrict bi = j.p2 + k0;
    pack(xb, hw, len, c, s, bi, j.p0 != nullptr ? j.p0 + k0 : nullptr, j.bits + b * hw * words + w, words);
    for (std::int64_t k = 0; k < len; ++k) {
      const float z = xb[k] * s[k];
      acc[k] = z + bi[k];
    }
    for (std::int64_t r = 1; r < hw; ++r) {
      const float* __restrict row = xb + r * c;
      for (std::int64_t k = 0; k < len; ++k) {
        const float z = row[k] * s[k];
        acc[k] += z + bi[k];
      }
    }
    float* __restrict m = j.out + b * c + k0;
    for (std::int64_t k = 0; k < len; ++k) m[k] = acc[k] * inv;
  }
}

// Rows [r0, r1) of the parts written side by side into out, through the affine if given.
__attribute__((always_inline)) inline void affine_parts_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  for (std::int64_t r = r0; r < r1; ++r) join_row(j, r, j.out + r * j.c);
}

// Flat ranges [i0, i1) of elements, numpy's rounding and signed zeros.
__attribute__((always_inline)) inline void relu_range(const Job& j, std::int64_t i0, std::int64_t i1) {
  const float* __restrict x = j.x;
  float* __restrict o = j.out;
  for (std::int64_t i = i0; i < i1; ++i) o[i] = x[i] <= 0.0f ? 0.0f : x[i];  // maximum(x, 0): -0 -> +0, NaN kept
}

__attribute__((always_inline)) inline void clip_range(const Job& j, std::int64_t i0, std::int64_t i1) {
  const float* __restrict x = j.x;
  float* __restrict o = j.out;
  const float low = j.low, high = j.high;
  for (std::int64_t i = i0; i < i1; ++i) {  // minimum(maximum(x, low), high)
    const float v = x[i] < low ? low : x[i];
    o[i] = v > high ? high : v;
  }
}

__attribute__((always_inline)) inline void sigmoid_range(const Job& j, std::int64_t i0, std::int64_t i1) {
  for (std::int64_t i = i0; i < i1; ++i) {
    j.out[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(j.x[i]))));
  }
}

// Rows [r0, r1) of x times the gate row of their sample (hw rows per sample).
__attribute__((always_inline)) inline void gate_rows(const Job& j, std::int64_t r0, std::int64_t r1) {
  const std::int64_t c = j.c;
  for (std::int64_t r = r0; r < r1; ++r) {
    const float* __restrict x = j.x + r * c;
    const float* __restrict g = j.y + (r / j.hw) * c;
    float* __restrict o = j.out + r * c;
    for (std::int64_t k = 0; k < c; ++k) o[k] = x[k] * g[k];
  }
}

__attribute__((always_inline)) inline void run_body(const Job& j, std::int64_t r0, std::int64_t r1) {
  switch (j.step) {
    case Step::affine: affine_rows(j, r0, r1); break;
    case Step::prelu: prelu_rows(j, r0, r1); break;
    case Step::add: add_range(j, r0, r1); break;
    case Step::pack_shifted: shifted_rows(j, r0, r1); break;
    case Step::pack_parts: parts_rows(j, r0, r1); break;
    case Step::affine_parts: affine_parts_rows(j, r0, r1); break;
    case Step::clip: clip_range(j, r0, r1); break;
    case Step::relu: relu_range(j, r0, r1); break;
    case Step::sigmoid: sigmoid_range(j, r0, r1); break;
    case Step::gate: gate_rows(j, r0, r1); break;
    case Step::planes: planes_rows(j, r0, r1); break;
    case Step::concat_bits: concat_bits_rows(j, r0, r1); break;
    case Step::affine_mean_sign: affine_mean_sign_rows(j, r0, r1); break;
  }
}

void body_baseline(const Job& j, std::int64_t r0, std::int64_t r1) { run_body(j, r0, r1); }

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) void body_avx2(const Job& j, std::int64_t r0, std::int64_t r1) {
  run_body(j, r0, r1);
}
__attribute__((target("avx512f"))) void body_avx512(const Job& j, std::int64_t r0, std::int64_t r1) {
  run_body(j, r0, r1);
}
#else
void body_avx2(const Job& j, std::int64_t r0, std::int64_t r1) { run_body(j, r0, r1); }
void body_avx512(const Job& j, std::int64_t r0, std::int64_t r1) { run_body(j, r0, r1); }
#endif

void task(void* ctx, std::int64_t t, int /*thread*/) {
  const Job& j = *static_cast<const Job*>(ctx);
  // Runs of rows within one of each other.
  const std::int64_t base = j.rows / j.tasks, extra = j.rows % j.tasks;
  const std::int64_t r0 = t * base + std::min(t, extra), r1 = r0 + base + (t < extra ? 1 : 0);
  switch (j.isa) {
    case Isa::avx512: body_avx512(j, r0, r1); break;
    case Isa::avx2: body_avx2(j, r0, r1); break;
    default: body_baseline(j, r0, r1); break;
  }
}

void run(Job& j, int num_threads) {
  if (j.rows <= 0 || j.c <= 0) return;
  // planes: one pass over x per plane; concat_bits: about 2 ns per part and row (strided words)
  // affine_mean_sign: rows are (sample, word) tasks of hw rows of 64 channels, two passes
  const double micros = j.step == Step::concat_bits ? static_cast<double>(j.rows) * j.n_parts / kPartRowsPerMicro
                        : j.step == Step::affine_mean_sign
                            ? static_cast<double>(j.rows) * static_cast<double>(j.hw) * 128.0 / kFloatsPerMicro
                            : static_cast<double>(j.rows) * static_cast<double>(j.c) *
                                  (j.step == Step::planes ? j.n_planes : 1) / kFloatsPerMicro;
  const int threads = static_cast<int>(std::clamp<double>(micros / kMinMicrosPerThread, 1.0, std::max(num_threads, 1)));
  j.tasks = threads == 1 ? 1 : std::min<std::int64_t>(j.rows, 4 * static_cast<std::int64_t>(threads));
  parallel_run(threads, j.tasks, task, &j, micros);
}

// A job over the channel concatenation of n_parts arrays (c: their channels in all).
Job parts_job(Step step, const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t rows,
              const float* shift, const float* scale, const float* bias, float* out, std::uint64_t* bits, Isa isa) {
  std::int64_t c = 0;
  for (int i = 0; i < n_parts; ++i) c += channels[i];
  Job j{step, nullptr, nullptr, shift, scale, bias, out, bits, rows, c, 1, isa};
  j.parts = parts;
  j.part_channels = channels;
  j.n_parts = n_parts;
  return j;
}

}  // namespace

void channel_affine(const float* x, std::int64_t rows, std::int64_t c, const float* scale, const float* bias,
                    float* out, int num_threads, Isa isa) {
  Job j{Step::affine, x, nullptr, scale, bias, nullptr, out, nullptr, rows, c, 1, isa};
  run(j, num_threads);
}

void channel_prelu(const float* x, std::int64_t rows, std::int64_t c, const float* shift_in, const float* slope,
                   const float* shift_out, float* out, int num_threads, Isa isa) {
  Job j{Step::prelu, x, nullptr, shift_in, slope, shift_out, out, nullptr, rows, c, 1, isa};
  run(j, num_threads);
}

void add_f32(const float* a, const float* b, std::int64_t n, float* out, int num_threads, Isa isa) {
  // Flat: "rows" of one element, so that tasks split anywhere.
  Job j{Step::add, a, b, nullptr, nullptr, nullptr, out, nullptr, n, 1, 1, isa};
  run(j, num_threads);
}

void pack_shifted(const float* x, std::int64_t rows, std::int64_t c, const float* shift, std::uint64_t* out,
                  int num_threads, Isa isa) {
  Job j{Step::pack_shifted, x, nullptr, shift, nullptr, nullptr, nullptr, out, rows, c, 1, isa};
  run(j, num_threads);
}

void pack_shifted_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t rows,
                        const float* scale, const float* bias, const float* shift, std::uint64_t* out,
                        int num_threads, Isa isa) {
  Job j = parts_job(Step::pack_parts, parts, channels, n_parts, rows, shift, scale, bias, nullptr, out, isa);
  run(j, num_threads);
}

void pack_planes(const float* x, std::int64_t rows, std::int64_t c, int n_planes, const float* const* scale,
                 const float* const* bias, const float* const* shift, std::uint64_t* out, int num_threads, Isa isa) {
  // c: the channels of one plane (the cost estimate counts each plane's pass).
  Job j{Step::planes, x, nullptr, nullptr, nullptr, nullptr, nullptr, out, rows, c, 1, isa};
  j.plane_scale = scale;
  j.plane_bias = bias;
  j.plane_shift = shift;
  j.n_planes = n_planes;
  run(j, num_threads);
}

void affine_mean_sign(const float* x, std::int64_t n, std::int64_t hw, std::int64_t c, const float* scale,
                      const float* bias, const float* shift, float* mean, std::uint64_t* bits, int num_threads,
                      Isa isa) {
  if (hw <= 0) return;
  // One task per sample and 64-channel word: a word's bits and its channels' sums are its own.
  Job j{Step::affine_mean_sign, x, nullptr, shift, scale, bias, mean, bits, n * words_for(c), c, 1, isa};
  j.hw = hw;
  run(j, num_threads);
}

void concat_bits(const std::uint64_t* const* src, const std::int64_t* stride, const std::int64_t* offset,
                 const std::int64_t* nbits, int n_parts, std::int64_t rows, std::int64_t out_words, std::uint64_t* out,
                 int num_threads) {
  // The word copies vectorize at no width in particular: the baseline body for every ISA.
  Job j{Step::concat_bits, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, out, rows, out_words, 1, Isa::scalar};
  j.bit_src = src;
  j.bit_stride = stride;
  j.bit_offset = offset;
  j.bit_count = nbits;
  j.n_parts = n_parts;
  run(j, num_threads);
}

void channel_affine_parts(const float* const* parts, const std::int64_t* channels, int n_parts, std::int64_t rows,
                          const float* scale, const float* bias, float* out, int num_threads, Isa isa) {
  Job j = parts_job(Step::affine_parts, parts, channels, n_parts, rows, nullptr, scale, bias, out, nullptr, isa);
  run(j, num_threads);
}

void relu_f32(const float* x, std::int64_t n, float* out, int num_threads, Isa isa) {
  Job j{Step::relu, x, nullptr, nullptr, nullptr, nullptr, out, nullptr, n, 1, 1, isa};
  run(j, num_threads);
}

void clip_f32(const float* x, std::int64_t n, float low, float high, float* out, int num_threads, Isa isa) {
  Job j{Step::clip, x, nullptr, nullptr, nullptr, nullptr, out, nullptr, n, 1, 1, isa};
  j.low = low;
  j.high = high;
  run(j, num_threads);
}

void sigmoid_f32(const float* x, std::int64_t n, float* out, int num_threads, Isa isa) {
  Job j{Step::sigmoid, x, nullptr, nullptr, nullptr, nullptr, out, nullptr, n, 1, 1, isa};
  run(j, num_threads);
}

void channel_gate(const float* x, const float* g, std::int64_t n, std::int64_t hw, std::int64_t c, float* out,
                  int num_threads, Isa isa) {
  Job j{Step::gate, x, g, nullptr, nullptr, nullptr, out, nullptr, n * hw, c, 1, isa};
  j.hw = hw;
  run(j, num_threads);
}

}  // namespace onebit
