// Binary 2-D convolution: bit-level im2col + the bgemm micro-kernels (see bconv.h).
#include "bconv.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <mutex>

#include "threadpool.h"

namespace onebit {

namespace {

// Bytes of im2col rows one task builds (they are re-read once per weight tile: keep them
// in L2). The thread count follows the bgemm driver's rule (bgemm_threads_for).
constexpr std::int64_t kTileBytes = 256 * 1024;
// Bound on every size parameter, so no coordinate or K arithmetic can overflow.
constexpr std::int64_t kMaxParam = std::int64_t{1} << 30;
// Segments (kernel rows, or taps where dilated) of the implicit im2col: more go the copying way.
constexpr std::int64_t kMaxImplicitSegments = 64;
// The largest micro-kernel row count of any ISA (the implicit path's copied rows are on the stack).
constexpr std::int64_t kMaxMr = 8;

std::string pair_str(std::int64_t a, std::int64_t b) {
  return "(" + std::to_string(a) + ", " + std::to_string(b) + ")";
}

// Valid taps [lo, hi) along one axis for an output coordinate whose first tap reads input
// index base (= o * stride - pad): base + t * d in [0, size). Empty -> {0, 0}.
struct Range {
  std::int64_t lo, hi;
  bool operator==(const Range& o) const { return lo == o.lo && hi == o.hi; }
};

Range valid_taps(std::int64_t base, std::int64_t d, std::int64_t k, std::int64_t size) {
  const std::int64_t lo = base >= 0 ? 0 : (-base + d - 1) / d;
  const std::int64_t hi = base > size - 1 ? 0 : std::min(k, (size - 1 - base) / d + 1);
  return lo < hi ? Range{lo, hi} : Range{0, 0};
}

// Per output coordinate of one axis: its valid tap range, and an id among the distinct ones.
struct Axis {
  std::vector<Range> range;
  std::vector<std::int32_t> id;
  std::vector<Range> distinct;
  std::int32_t full = -1;  // id of [0, k), -1 if no coordinate has all taps inside
  // The coordinates with all taps inside, [full_lo, full_hi): one interval, the tap window
  // slides monotonically (empty where full < 0).
  std::int64_t full_lo = 0, full_hi = 0;
};

Axis make_axis(std::int64_t out, std::int64_t s, std::int64_t p, std::int64_t d, std::int64_t k, std::int64_t size) {
  Axis a;
  a.range.resize(static_cast<std::size_t>(out));
  a.id.resize(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) {
    const Range r = valid_taps(i * s - p, d, k, size);
    a.range[static_cast<std::size_t>(i)] = r;
    // Patterns change only near the borders: compare with the previous ones first.
    std::int32_t id = -1;
    for (std::size_t q = a.distinct.size(); q-- > 0;) {
      if (a.distinct[q] == r) {
        id = static_cast<std::int32_t>(q);
        break;
      }
    }
    if (id < 0) {
      id = static_cast<std::int32_t>(a.distinct.size());
      a.distinct.push_back(r);
      if (r.lo == 0 && r.hi == k) a.full = id;
    }
    a.id[static_cast<std::size_t>(i)] = id;
    if (id == a.full) {
      if (a.full_hi == 0) a.full_lo = i;
      a.full_hi = i + 1;
    }
  }
  return a;
}

// Copies n words. im2col copies are short (one tap of a few words, or one kernel row of
// taps): fixed-size chunks compile to plain vector moves, where a memcpy call per tap
// would cost more than the copy.
inline void copy_words(std::uint64_t* __restrict d, const std::uint64_t* __restrict s, std::int64_t n) {
  for (; n >= 4; n -= 4, d += 4, s += 4) std::memcpy(d, s, 32);
  if (n >= 2) {
    std::memcpy(d, s, 16);
    n -= 2, d += 2, s += 2;
  }
  if (n) *d = *s;
}

// The dense row of 9 taps of CG bits (CG divides 64: no tap straddles two words), each word
// ORed together in a register and stored once.
template <int CG>
inline void assemble_taps(const std::uint64_t (&v)[9], std::uint64_t* out) {
  constexpr int kWords = (9 * CG + 63) / 64;
  std::uint64_t words[kWords] = {};
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) words[t * CG / 64] |= v[t] << (t * CG % 64);
#pragma GCC unroll 8
  for (int q = 0; q < kWords; ++q) out[q] = words[q];
}

// Writes a dense im2col (or weight) row: the taps' cg < 64 channel bits one after the
// other, each word assembled in a register and stored once (ORing each tap into memory
// chained every tap on the previous one's store).
struct DenseRow {
  std::uint64_t* row;
  std::int64_t cg;
  std::uint64_t acc = 0;
  std::int64_t q = 0, s = 0;  // the word being assembled, its bits so far

  void put(std::uint64_t v) {  // v: the tap's bits, the rest 0
    acc |= v << s;
    s += cg;
    if (s >= 64) {
      row[q++] = acc;
      s -= 64;
      acc = s != 0 ? v >> (cg - s) : 0;
    }
  }
  void finish() {
    if (s != 0) row[q] = acc;
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- construction ----

// The parts of a call's plan that depend only on the input size (h, w): per output row
// and column the valid taps, and with zero padding, per border pattern (row id, col id),
// the sum of the weights at the taps outside the valid box, which the +1 fill added.
struct Borders {
  std::int64_t h = 0, w = 0;
  Axis rows, cols;
  bool correct = false;
  std::vector<std::int32_t> corr;  // corr[(row id * distinct cols + col id) * O + o]
};

struct BinaryConv2d::BorderCache {
  std::mutex mu;
  std::shared_ptr<const Borders> last;
};

BinaryConv2d::BinaryConv2d(const std::uint64_t* w, std::int64_t out_channels, std::int64_t kh, std::int64_t kw,
                           std::int64_t in_channels, std::int64_t groups, std::array<std::int64_t, 2> stride,
                           std::array<std::int64_t, 2> padding, std::array<std::int64_t, 2> dilation,
                           int pad_value, std::array<std::int64_t, 2> padding_end)
    : o_(out_channels), kh_(kh), kw_(kw), c_(in_channels), g_(groups), sh_(stride[0]), sw_(stride[1]),
      ph_(padding[0]), pw_(padding[1]), dh_(dilation[0]), dw_(dilation[1]), pad_value_(pad_value),
      pb_(padding_end[0] < 0 ? padding[0] : padding_end[0]), pr_(padding_end[1] < 0 ? padding[1] : padding_end[1]),
      borders_(std::make_shared<BorderCache>()) {
  const std::string fn = "BinaryConv2d: ";
  auto in_range = [](std::int64_t v, std::int64_t lo) { return v >= lo && v <= kMaxParam; };
  if (!in_range(o_, 1)) throw std::invalid_argument(fn + "out_channels must be >= 1, got " + std::to_string(o_));
  if (!in_range(kh_, 1) || !in_range(kw_, 1)) {
    throw std::invalid_argument(fn + "kernel size must be >= 1, got " + pair_str(kh_, kw_));
  }
  if (!in_range(c_, 1)) throw std::invalid_argument(fn + "in_channels must be >= 1, got " + std::to_string(c_));
  if (!in_range(g_, 1)) throw std::invalid_argument(fn + "groups must be >= 1, got " + std::to_string(g_));
  if (!in_range(sh_, 1) || !in_range(sw_, 1)) {
    throw std::invalid_argument(fn + "stride must be >= 1, got " + pair_str(sh_, sw_));
  }
  if (!in_range(ph_, 0) || !in_range(pw_, 0) || !in_range(pb_, 0) || !in_range(pr_, 0)) {
    throw std::invalid_argument(fn + "padding must be >= 0, got " + pair_str(ph_, pw_) + " before and " +
                                pair_str(pb_, pr_) + " after");
  }
  if (!in_range(dh_, 1) || !in_range(dw_, 1)) {
    throw std::invalid_argument(fn + "dilation must be >= 1, got " + pair_str(dh_, dw_));
  }
  if (pad_value_ != -1 && pad_value_ != 0 && pad_value_ != 1) {
    throw std::invalid_argument(fn + "pad_value must be -1, 0 or +1, got " + std::to_string(pad_value_));
  }
  if (c_ % g_ != 0 || o_ % g_ != 0) {
    throw std::invalid_argument(fn + "in_channels=" + std::to_string(c_) + " and out_channels=" +
                                std::to_string(o_) + " must both be divisible by groups=" + std::to_string(g_));
  }
  cg_ = c_ / g_;
  og_ = o_ / g_;
  if (g_ > 1 && cg_ % 64 != 0) {
    throw std::invalid_argument(fn + "groups=" + std::to_string(g_) + " gives " + std::to_string(cg_) +
                                " input channels per group; grouped convolutions need a multiple of 64 "
                                "channels per group (each group whole uint64 words)");
  }
  taps_ = kh_ * kw_;
  if (taps_ > kMaxParam || taps_ * cg_ > kMaxParam) {
    throw std::invalid_argument(fn + "K = KH * KW * C/groups = " + std::to_string(taps_) + " * " +
                                std::to_string(cg_) + " is too large (max 2^30)");
  }
  words_g_ = words_for(cg_);
  in_words_ = words_for(c_);

  const std::int64_t row_words = taps_ * words_g_;
  dense_ = g_ == 1 && cg_ < 64 && words_for(taps_ * cg_) < taps_;
  row_words_ = dense_ ? words_for(taps_ * cg_) : row_words;
  packed_.reserve(static_cast<std::size_t>(g_));
  if (dense_) {
    std::vector<std::uint64_t> rows(static_cast<std::size_t>(o_ * row_words_), 0);
    for (std::int64_t o = 0; o < o_; ++o) {
      DenseRow row{rows.data() + o * row_words_, cg_};
      for (std::int64_t t = 0; t < taps_; ++t) row.put(w[o * taps_ + t]);
      row.finish();
    }
    packed_.push_back(PackedWeights::with_k_bits(rows.data(), o_, row_words_, k_bits()));
  } else {
    for (std::int64_t gi = 0; gi < g_; ++gi) {
      packed_.push_back(PackedWeights::with_k_bits(w + gi * og_ * row_words, og_, row_words, k_bits()));
    }
  }

  pad_word_.assign(static_cast<std::size_t>(words_g_), 0);
  if (pad_value_ == -1) {
    for (std::int64_t q = 0; q < words_g_; ++q) pad_word_[static_cast<std::size_t>(q)] = ~std::uint64_t{0};
    if (cg_ % 64) pad_word_.back() = (std::uint64_t{1} << (cg_ % 64)) - 1;
  }
  if (pad_value_ == 0) {
    const std::int64_t px = kw_ + 1;
    tap_prefix_.assign(static_cast<std::size_t>((kh_ + 1) * px * o_), 0);
    auto at = [&](std::int64_t y, std::int64_t x, std::int64_t o) -> std::int32_t& {
      return tap_prefix_[static_cast<std::size_t>((y * px + x) * o_ + o)];
    };
    for (std::int64_t o = 0; o < o_; ++o) {
      for (std::int64_t ky = 0; ky < kh_; ++ky) {
        for (std::int64_t kx = 0; kx < kw_; ++kx) {
          const std::uint64_t* tap = w + (o * taps_ + ky * kw_ + kx) * words_g_;
          std::int64_t ones = 0;
          for (std::int64_t q = 0; q < words_g_; ++q) ones += __builtin_popcountll(tap[q]);
          const auto s = static_cast<std::int32_t>(cg_ - 2 * ones);
          at(ky + 1, kx + 1, o) = s + at(ky, kx + 1, o) + at(ky + 1, kx, o) - at(ky, kx, o);
        }
      }
    }
  }
}

std::array<std::int64_t, 2> BinaryConv2d::output_shape(std::int64_t h, std::int64_t w) const {
  if (h < 1 || w < 1 || h > kMaxParam || w > kMaxParam) {
    throw std::invalid_argument("BinaryConv2d: input size must be in 1..2^30, got " + pair_str(h, w));
  }
  const std::int64_t oh = (h + ph_ + pb_ - dh_ * (kh_ - 1) - 1), ow = (w + pw_ + pr_ - dw_ * (kw_ - 1) - 1);
  if (oh < 0 || ow < 0) {
    throw std::invalid_argument("BinaryConv2d: input " + pair_str(h, w) + " with padding " + pair_str(ph_, pw_) +
                                " is smaller than the dilated kernel " +
                                pair_str(dh_ * (kh_ - 1) + 1, dw_ * (kw_ - 1) + 1) +
                                " (output size would be < 1)");
  }
  return {oh / sh_ + 1, ow / sw_ + 1};
}

// ---- run ----

// One call of run / run_threshold: the plan and the shared state of its tasks.
struct ConvRun {
  const BinaryConv2d& cv;
  const BgemmKernels* kern = nullptr;
  Isa isa_ = Isa::scalar;
  const std::uint64_t* x = nullptr;
  std::int64_t n = 0, h = 0, w = 0, oh = 0, ow = 0, np = 0;
  std::shared_ptr<const Borders> borders;
  const Axis* rows = nullptr;
  const Axis* cols = nullptr;
  bool correct = false;  // pad 0 with border pixels: subtract borders->corr
  bool direct = false;  // 1x1, stride 1, no padding: x is the A matrix
  // Implicit im2col (the ISA has a segmented micro-kernel, one group, word-per-tap rows of
  // one K block): the pixels whose taps are all inside the image, cx0 <= ox < cx1 of a full
  // row, run straight from x, nseg segments of seg_words words per pixel, pix words apart.
  bool implicit = false;
  std::int64_t cx0 = 0, cx1 = 0, nseg = 0, seg_words = 0, pix = 0;
  std::int64_t lda = 0;  // im2col row: g * taps * words_g words (dense taps: row_words_)
  std::int64_t max_tile = 0, pixel_tiles = 0, tiles_g = 0, total_tiles = 0, tiles_per_block = 0, n_blocks = 0;
  double micros = -1.0;  // estimated single-thread time of the GEMM part, for parallel_run
  // run: int32 output
  std::int32_t* y = nullptr;
  // run_float: float32 output through the stage
  const BinaryConv2d::FloatStage* stage = nullptr;
  float* fy = nullptr;
  // run_threshold
  const std::int32_t* thresh = nullptr;
  std::vector<std::uint32_t> neg;
  std::uint32_t* out = nullptr;
  std::int64_t out_halves = 0;
  // run_threshold with a fused pool: tasks are pooled_tasks runs of the n * poh pooled rows
  const BinaryConv2d::BitPool* pool = nullptr;
  std::uint64_t* pooled = nullptr;
  std::int64_t poh = 0, pow = 0, pooled_tasks = 0;
  // profiling, per thread
  std::vector<BinaryConv2d::Profile>* prof = nullptr;

  explicit ConvRun(const BinaryConv2d& c) : cv(c) {}

  void setup(const std::uint64_t* xs, std::int64_t nn, std::int64_t hh, std::int64_t ww, Isa isa, bool threshold,
             const BinaryConv2d::BitPool* bit_pool, bool whole_rows, int& num_threads) {
    kern = &bgemm_kernels(isa);
    isa_ = isa;
    if (kern->ukernel == nullptr) {
      throw std::invalid_argument(std::string("BinaryConv2d: ISA ") + isa_name(isa) + " is not compiled in");
    }
    if (nn < 0) throw std::invalid_argument("BinaryConv2d: batch must be >= 0");
    const auto shape = cv.output_shape(hh, ww);
    x = xs;
    n = nn;
    h = hh;
    w = ww;
    oh = shape[0];
    ow = shape[1];
    np = n * oh * ow;
    borders = cv.borders(h, w, oh, ow);
    rows = &borders->rows;
    cols = &borders->cols;
    correct = borders->correct;
    direct = cv.kh_ == 1 && cv.kw_ == 1 && cv.sh_ == 1 && cv.sw_ == 1 && cv.ph_ == 0 && cv.pw_ == 0 && cv.pb_ == 0 &&
             cv.pr_ == 0;
    lda = cv.dense_ ? cv.row_words_ : cv.g_ * cv.taps_ * cv.words_g_;
    // Where copying costs: up to 2 words per tap (at 4 and more the copy is a few percent,
    // and the copied rows' one contiguous K loop is a little faster than the segments).
    implicit = !direct && !cv.dense_ && cv.g_ == 1 && cv.words_g_ <= 2 && kern->ukernel_seg != nullptr &&
               lda <= kBgemmKC && kern->mr <= kMaxMr &&
               (cv.dw_ == 1 ? cv.kh_ : cv.taps_) <= kMaxImplicitSegments &&
               rows->full >= 0 && cols->full >= 0;
    if (implicit) {
      cx0 = cols->full_lo;
      cx1 = cols->full_hi;
      const bool runs = cv.dw_ == 1;  // a kernel row's taps are one run of words
      nseg = runs ? cv.kh_ : cv.taps_;
      seg_words = runs ? cv.kw_ * cv.words_g_ : cv.words_g_;
      pix = cv.sw_ * cv.in_words_;
    }

    // Plan: pixel tasks whose im2col rows fit kTileBytes (at most 16 micro-tiles), cut
    // to within one pixel of each other: tasks of multiples of MR rows left the last
    // one short, and with two threads a 32x32 image's 11 tiles of 96 or a 16x16 image's
    // 7 x 36 + 4 gave one thread a whole tile more (the net scaled 1.6x, not 1.8x). With
    // threads, a multiple of their count: 4 per thread (the machine may be shared), 2 if
    // that left tasks under 2 micro-tiles; only images smaller still (a few pixels per
    // thread) split the output channels too.
    const std::int64_t mr = kern->mr;
    const std::int64_t row_bytes = direct ? 0 : lda * 8;
    max_tile = 16 * mr;
    if (row_bytes > 0) max_tile = std::clamp<std::int64_t>(kTileBytes / row_bytes / mr * mr, mr, 16 * mr);
    const double pairs = static_cast<double>(np) * static_cast<double>(cv.o_ * cv.row_words_);
    int threads = bgemm_threads_for(*kern, pairs, num_threads, &micros);
    pixel_tiles = std::max<std::int64_t>((np + max_tile - 1) / max_tile, 1);
    if (threads > 1) {
      const std::int64_t per_thread = np >= 4 * threads * 2 * mr ? 4 : 2;
      pixel_tiles = std::max(pixel_tiles, std::min(per_thread * threads, std::max<std::int64_t>(np / mr, 1)));
      pixel_tiles = (pixel_tiles + threads - 1) / threads * threads;
    }
    pixel_tiles = std::min(pixel_tiles, std::max<std::int64_t>(np, 1));
    tiles_g = cv.packed_[0].tiles();
    total_tiles = tiles_g * cv.g_;
    tiles_per_block = total_tiles;
    // The threshold stage writes 32-bit halves of the output words: a task must own whole
    // 32-channel chunks, which group tiles are unless a group's width is not a multiple of 32.
    const bool splittable = !threshold || cv.g_ == 1 || cv.og_ % kBgemmNR == 0;
    if (threads > 1 && splittable && !whole_rows && pixel_tiles < 2 * threads) {
      const std::int64_t blocks = std::min(total_tiles, (2 * threads + pixel_tiles - 1) / pixel_tiles);
      tiles_per_block = (total_tiles + blocks - 1) / blocks;
    }
    n_blocks = (total_tiles + tiles_per_block - 1) / tiles_per_block;
    if (bit_pool != nullptr) {
      // Tasks of whole pooled rows (of at most ~8 GEMM tiles of conv pixels, so that their
      // bits are still in cache when pooled), as many as the pixel plan, all channels.
      pool = bit_pool;
      const auto ps = bmaxpool2d_output_shape(oh, ow, pool->kernel, pool->stride, pool->padding, pool->padding_end);
      poh = ps[0];
      pow = ps[1];
      const std::int64_t rows = n * poh;
      const std::int64_t cap = std::max<std::int64_t>(1, 8 * max_tile / std::max<std::int64_t>(pool->stride[0] * ow, 1));
      pooled_tasks = std::max<std::int64_t>((rows + cap - 1) / cap, 1);
      if (threads > 1) {
        pooled_tasks = std::max(pooled_tasks, std::min(pixel_tiles * n_blocks, rows));
        pooled_tasks = (pooled_tasks + threads - 1) / threads * threads;
      }
      pooled_tasks = std::min(pooled_tasks, std::max<std::int64_t>(rows, 1));
      num_threads = static_cast<int>(std::min<std::int64_t>(threads, pooled_tasks));
      return;
    }
    num_threads = static_cast<int>(std::min<std::int64_t>(threads, pixel_tiles * n_blocks));
  }

  // Start of part i of [0, total) cut into parts runs within one of each other (the first
  // total % parts one longer); part `parts` starts at total.
  static std::int64_t balanced_start(std::int64_t i, std::int64_t total, std::int64_t parts) {
    const std::int64_t base = total / parts, extra = total % parts;
    return i * base + std::min(i, extra);
  }

  // Dense taps (one group, Cg < 64: one input word per pixel): each tap's word, or the pad
  // word, in tap order. Cg of 8, 16 or 32 (a lane type T) stores each tap as one lane, the
  // stores independent of each other (little-endian: lane t holds bits t * Cg of the
  // row); any other Cg assembles the words in a register (DenseRow).
  template <typename T>
  void im2col_dense(std::int64_t p0, std::int64_t p1, std::uint64_t* buf) const {
    constexpr bool lanes = !std::is_same_v<T, void>;
    const std::int64_t kw = cv.kw_;
    const std::uint64_t pad = cv.pad_word_[0];
    const bool tail = (cv.taps_ * cv.cg_) % 64 != 0;
    const bool three = cv.kh_ == 3 && kw == 3;
    std::int64_t ox = p0 % ow, oy = (p0 / ow) % oh, b = p0 / (ow * oh);
    for (std::int64_t p = p0; p < p1; ++p) {
      std::uint64_t* out = buf + (p - p0) * lda;
      [[maybe_unused]] DenseRow row{out, cv.cg_};
      [[maybe_unused]] auto* bytes = reinterpret_cast<unsigned char*>(out);
      if constexpr (lanes) {
        if (tail) out[lda - 1] = 0;
      }
      std::int64_t t = 0;
      auto put = [&](std::uint64_t v) {
        if constexpr (lanes) {
          const T lane = static_cast<T>(v);
          std::memcpy(bytes + t * static_cast<std::int64_t>(sizeof(T)), &lane, sizeof(T));
          ++t;
        } else {
          row.put(v);
        }
      };
      const Range ry = rows->range[static_cast<std::size_t>(oy)], rx = cols->range[static_cast<std::size_t>(ox)];
      const std::int64_t by = oy * cv.sh_ - cv.ph_, bx = ox * cv.sw_ - cv.pw_;
      const std::uint64_t* img = x + b * h * w;
      for (std::int64_t ky = 0; ky < cv.kh_; ++ky) {
        if (ky < ry.lo || ky >= ry.hi) {
          for (std::int64_t kx = 0; kx < kw; ++kx) put(pad);
          continue;
        }
        const std::uint64_t* src = img + (by + ky * cv.dh_) * w + bx;
        if constexpr (lanes) {
          if (ky == 0 && three && ry.lo == 0 && ry.hi == 3 && rx.lo == 0 && rx.hi == 3) {
            // An interior pixel of a 3x3 kernel: the words assembled in registers, shifts known.
            const std::uint64_t* r1 = src + cv.dh_ * w;
            const std::uint64_t* r2 = src + 2 * cv.dh_ * w;
            const std::int64_t d = cv.dw_;
            const std::uint64_t v[9] = {src[0], src[d], src[2 * d], r1[0], r1[d], r1[2 * d], r2[0], r2[d], r2[2 * d]};
            assemble_taps<8 * static_cast<int>(sizeof(T))>(v, out);
            break;
          }
        }
        if (rx.lo == 0 && rx.hi == kw) {
          for (std::int64_t kx = 0; kx < kw; ++kx) put(src[kx * cv.dw_]);
        } else {
          for (std::int64_t kx = 0; kx < kw; ++kx) put(kx >= rx.lo && kx < rx.hi ? src[kx * cv.dw_] : pad);
        }
      }
      if constexpr (!lanes) row.finish();
      if (++ox == ow) {
        ox = 0;
        if (++oy == oh) {
          oy = 0;
          ++b;
        }
      }
    }
  }

  // im2col rows of pixels [p0, p1) for groups [g0, g1] into buf (rows of lda words).
  void im2col(std::int64_t p0, std::int64_t p1, std::int64_t g0, std::int64_t g1, std::uint64_t* buf) const {
    if (cv.dense_) {
      constexpr bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
      if (little && cv.cg_ == 32) {
        im2col_dense<std::uint32_t>(p0, p1, buf);
      } else if (little && cv.cg_ == 16) {
        im2col_dense<std::uint16_t>(p0, p1, buf);
      } else if (little && cv.cg_ == 8) {
        im2col_dense<std::uint8_t>(p0, p1, buf);
      } else {
        im2col_dense<void>(p0, p1, buf);
      }
      return;
    }
    const std::int64_t wg = cv.words_g_, iw = cv.in_words_, kw = cv.kw_, taps = cv.taps_;
    const std::uint64_t* pad = cv.pad_word_.data();
    const bool zero_pad = cv.pad_value_ != -1;
    const bool runs = cv.dw_ == 1 && wg == iw;  // a kernel row's taps are one contiguous run
    auto fill = [&](std::uint64_t* d, std::int64_t count) {  // count taps of pad words
      if (count <= 0) return;
      if (zero_pad) {
        std::memset(d, 0, static_cast<std::size_t>(count * wg) * 8);
      } else {
        for (std::int64_t t = 0; t < count; ++t) std::memcpy(d + t * wg, pad, static_cast<std::size_t>(wg) * 8);
      }
    };
    std::int64_t ox = p0 % ow, oy = (p0 / ow) % oh, b = p0 / (ow * oh);
    for (std::int64_t p = p0; p < p1; ++p) {
      std::uint64_t* row = buf + (p - p0) * lda;
      const Range ry = rows->range[static_cast<std::size_t>(oy)], rx = cols->range[static_cast<std::size_t>(ox)];
      const std::int64_t by = oy * cv.sh_ - cv.ph_, bx = ox * cv.sw_ - cv.pw_;
      const std::uint64_t* img = x + b * h * w * iw;
      if (runs && ry.hi - ry.lo == cv.kh_ && rx.hi - rx.lo == kw) {
        // Interior pixel, one group, contiguous kernel rows: KH copies of KW * words.
        const std::uint64_t* src = img + (by * w + bx) * iw;
        for (std::int64_t ky = 0; ky < cv.kh_; ++ky) copy_words(row + ky * kw * wg, src + ky * cv.dh_ * w * iw, kw * wg);
      } else {
        for (std::int64_t gi = g0; gi <= g1; ++gi) {
          std::uint64_t* dst = row + gi * taps * wg;
          for (std::int64_t ky = 0; ky < cv.kh_; ++ky) {
            std::uint64_t* d = dst + ky * kw * wg;
            if (ky < ry.lo || ky >= ry.hi) {
              fill(d, kw);
              continue;
            }
            const std::uint64_t* src = img + (by + ky * cv.dh_) * w * iw + gi * wg;
            fill(d, rx.lo);
            if (runs) {
              copy_words(d + rx.lo * wg, src + (bx + rx.lo) * iw, (rx.hi - rx.lo) * wg);
            } else {
              for (std::int64_t kx = rx.lo; kx < rx.hi; ++kx) copy_words(d + kx * wg, src + (bx + kx * cv.dw_) * iw, wg);
            }
            fill(d + rx.hi * wg, kw - rx.hi);
          }
        }
      }
      if (++ox == ow) {
        ox = 0;
        if (++oy == oh) {
          oy = 0;
          ++b;
        }
      }
    }
  }

  void task(std::int64_t t, int thread) const {
    BinaryConv2d::Profile* pr = prof ? &(*prof)[static_cast<std::size_t>(thread)] : nullptr;
    if (pool != nullptr) {
      pooled_task(t, pr);
      return;
    }
    const std::int64_t pt = t / n_blocks, nb = t % n_blocks;
    const std::int64_t p0 = balanced_start(pt, np, pixel_tiles), p1 = balanced_start(pt + 1, np, pixel_tiles);
    const std::int64_t t0 = nb * tiles_per_block, t1 = std::min(total_tiles, t0 + tiles_per_block);
    compute(p0, p1, t0, t1, out == nullptr ? nullptr : out + p0 * out_halves, pr);
  }

  // Pooled rows [r0, r1) of the task, image by image: their conv rows (GEMM tiles of at
  // most max_tile pixels) into a thread-local band of bits, then the pool of the band.
  void pooled_task(std::int64_t t, BinaryConv2d::Profile* pr) const {
    const std::int64_t rows = n * poh;
    const std::int64_t r1 = balanced_start(t + 1, rows, pooled_tasks);
    const std::int64_t kp = pool->kernel[0], sp = pool->stride[0], pp = pool->padding[0];
    const std::int64_t words = out_halves / 2;
    // A tile count of odd halves leaves the last word's upper half unwritten: zero it.
    const bool clear = (cv.o_ + kBgemmNR - 1) / kBgemmNR < out_halves;
    for (std::int64_t r = balanced_start(t, rows, pooled_tasks); r < r1;) {
      const std::int64_t b = r / poh, a0 = r % poh, a1 = std::min(poh, a0 + (r1 - r));
      const std::int64_t lo = std::max<std::int64_t>(0, a0 * sp - pp), hi = std::min(oh, (a1 - 1) * sp - pp + kp);
      const std::int64_t q0 = (b * oh + lo) * ow, q1 = (b * oh + hi) * ow;
      thread_local std::vector<std::uint64_t> band;
      const std::size_t need = static_cast<std::size_t>((q1 - q0) * words);
      if (band.size() < need) band.resize(need);
      if (clear) std::memset(band.data(), 0, need * 8);
      auto* bits = reinterpret_cast<std::uint32_t*>(band.data());
      for (std::int64_t p = q0; p < q1; p += max_tile) {
        compute(p, std::min(q1, p + max_tile), 0, total_tiles, bits + (p - q0) * out_halves, pr);
      }
      const auto start = pr ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
      bmaxpool2d_band(band.data(), hi - lo, ow, words, a1 - a0, pow, pool->kernel, pool->stride, lo + pp - a0 * sp,
                      pool->padding[1], pool->and_mask, pooled + (b * poh + a0) * pow * words, isa_);
      if (pr) pr->epilogue_s += seconds_since(start);
      r += a1 - a0;
    }
  }

  // Output pixels [p0, p1) x weight tiles [t0, t1) (the channels [c0, c1) they cover): the
  // int32 output, the float stage, or the threshold stage into bits (pixel p0's first half).
  void compute(std::int64_t p0, std::int64_t p1, std::int64_t t0, std::int64_t t1, std::uint32_t* bits,
               BinaryConv2d::Profile* pr) const {
    using clock = std::chrono::steady_clock;
    const std::int64_t m = p1 - p0;
    const std::int64_t g0 = t0 / tiles_g, g1 = (t1 - 1) / tiles_g;
    const std::int64_t c0 = g0 * cv.og_ + (t0 - g0 * tiles_g) * kBgemmNR;
    const std::int64_t c1 = g1 * cv.og_ + std::min(cv.og_, (t1 - g1 * tiles_g) * kBgemmNR);
    auto start = pr ? clock::now() : clock::time_point{};

    // Destination: the int32 output (column 0 = channel 0), or a scratch of the task's
    // channels [c0, c1) for the threshold or float stage.
    std::int32_t* dst;
    std::int64_t ldd, cbase;
    if (bits == nullptr && fy == nullptr) {
      dst = y + p0 * cv.o_;
      ldd = cv.o_;
      cbase = 0;
    } else {
      thread_local std::vector<std::int32_t> scratch;
      const std::size_t need = static_cast<std::size_t>(m * (c1 - c0));
      if (scratch.size() < need) scratch.resize(need);
      dst = scratch.data();
      ldd = c1 - c0;
      cbase = c0;
    }

    if (implicit) {
      const double copied = pr ? pr->im2col_s : 0.0;
      gemm_implicit(p0, p1, t0, t1, dst + (t0 * kBgemmNR - cbase), ldd, pr);
      if (pr) {
        pr->gemm_s += seconds_since(start) - (pr->im2col_s - copied);
        start = clock::now();
      }
    } else {
      const std::uint64_t* a = x + p0 * cv.in_words_;
      std::int64_t lda_a = cv.in_words_, group_stride = cv.words_g_;
      if (!direct) {
        thread_local std::vector<std::uint64_t> buffer;
        const std::size_t need = static_cast<std::size_t>(m * lda);
        if (buffer.size() < need) buffer.resize(need);
        im2col(p0, p1, g0, g1, buffer.data());
        a = buffer.data();
        lda_a = lda;
        group_stride = cv.taps_ * cv.words_g_;
        if (pr) {
          pr->im2col_s += seconds_since(start);
          start = clock::now();
        }
      }
      for (std::int64_t gi = g0; gi <= g1; ++gi) {
        const std::int64_t lt0 = std::max<std::int64_t>(t0 - gi * tiles_g, 0);
        const std::int64_t lt1 = std::min(t1 - gi * tiles_g, tiles_g);
        const std::int64_t col = gi * cv.og_ + lt0 * kBgemmNR;
        bgemm_serial(*kern, a + gi * group_stride, lda_a, m, cv.packed_[static_cast<std::size_t>(gi)], lt0, lt1,
                     dst + (col - cbase), ldd);
      }
      if (pr) {
        pr->gemm_s += seconds_since(start);
        start = clock::now();
      }
    }

    output_stage(p0, m, c0, c1, dst, ldd, cbase, bits);
    if (pr) pr->epilogue_s += seconds_since(start);
  }

  // The GEMM of pixels [p0, p1) x weight tiles [t0, t1) into d (column 0 = tile t0's first
  // channel, rows ldd apart), in windows of MR pixels from p0 as bgemm_serial cuts them (full
  // micro-tiles), each window against every tile (the weights of up to 2 words per tap stay
  // in L1): a window inside one output row's interior is read from x in place by the
  // segmented micro-kernel (bgemm.h), any other is copied (im2col) into MR rows on the stack.
  void gemm_implicit(std::int64_t p0, std::int64_t p1, std::int64_t t0, std::int64_t t1, std::int32_t* d,
                     std::int64_t ldd, BinaryConv2d::Profile* pr) const {
    using clock = std::chrono::steady_clock;
    const std::int64_t mr = kern->mr, iw = cv.in_words_;
    std::uint64_t rows_copy[kMaxMr * kBgemmKC];  // lda <= kBgemmKC (setup)
    std::int64_t seg_off[kMaxImplicitSegments];  // segment q from a window's base: kernel row or tap q
    for (std::int64_t ky = 0, q = 0; ky < cv.kh_; ++ky) {
      for (std::int64_t kx = 0; kx < (nseg == cv.kh_ ? 1 : cv.kw_); ++kx) seg_off[q++] = (ky * cv.dh_ * w + kx * cv.dw_) * iw;
    }
    const std::uint64_t* seg[kMaxImplicitSegments];
    const PackedWeights& pw = cv.packed_[0];
    const auto k_bits = static_cast<std::int32_t>(cv.k_bits());
    const unsigned flags = kBgemmFirst | kBgemmLast;
    double copy_s = 0.0;
    std::int64_t ox = p0 % ow, oy = (p0 / ow) % oh, b = p0 / (ow * oh);
    for (std::int64_t p = p0; p < p1; p += mr) {
      const std::int64_t count = std::min(mr, p1 - p);
      const bool inside = rows->id[static_cast<std::size_t>(oy)] == rows->full && ox >= cx0 && ox + count <= cx1;
      if (inside) {
        const std::uint64_t* base = x + ((b * h + oy * cv.sh_ - cv.ph_) * w + ox * cv.sw_ - cv.pw_) * iw;
        for (std::int64_t q = 0; q < nseg; ++q) seg[q] = base + seg_off[q];
      } else {
        const auto start = pr ? clock::now() : clock::time_point{};
        im2col(p, p + count, 0, 0, rows_copy);
        if (pr) copy_s += seconds_since(start);
      }
      std::int32_t* c = d + (p - p0) * ldd;
      for (std::int64_t t = t0; t < t1; ++t, c += kBgemmNR) {
        const std::int64_t nr = std::min(kBgemmNR, cv.o_ - t * kBgemmNR);
        if (inside) {
          kern->ukernel_seg(count, nr, nseg, seg, seg_words, pix, pw.tile(t), c, ldd, k_bits, flags);
        } else {
          kern->ukernel(count, nr, lda, rows_copy, lda, pw.tile(t), c, ldd, k_bits, flags);
        }
      }
      for (ox += mr; ox >= ow;) {  // the next window's first pixel
        ox -= ow;
        if (++oy == oh) {
          oy = 0;
          ++b;
        }
      }
    }
    if (pr) pr->im2col_s += copy_s;  // the rest of the time is the GEMM's (the caller's timer)
  }

  // The scratch's [c0, c1) for the destination (ldd, column cbase): the zero-padding
  // correction, then the float or the threshold stage.
  void output_stage(std::int64_t p0, std::int64_t m, std::int64_t c0, std::int64_t c1, std::int32_t* dst, std::int64_t ldd,
              std::int64_t cbase, std::uint32_t* bits) const {
    if (correct) {
      const std::int64_t nc = static_cast<std::int64_t>(cols->distinct.size());
      std::int64_t ox = p0 % ow, oy = (p0 / ow) % oh;
      for (std::int64_t p = 0; p < m; ++p) {
        const std::int32_t r = rows->id[static_cast<std::size_t>(oy)], c = cols->id[static_cast<std::size_t>(ox)];
        if (r != rows->full || c != cols->full) {
          const std::int32_t* s = borders->corr.data() + (r * nc + c) * cv.o_ + c0;
          std::int32_t* d = dst + p * ldd + (c0 - cbase);
          for (std::int64_t o = 0; o < c1 - c0; ++o) d[o] -= s[o];
        }
        if (++ox == ow) {
          ox = 0;
          if (++oy == oh) oy = 0;
        }
      }
    }
    if (fy != nullptr) apply_float_stage(*stage, dst, ldd, p0, m, c0, c1, fy, cv.o_, isa_);
    if (bits != nullptr) {
      // c0 is a multiple of 32 (see setup): one threshold stage per 32-channel chunk.
      for (std::int64_t q = c0 / kBgemmNR; q * kBgemmNR < c1; ++q) {
        const std::int64_t nr = std::min(kBgemmNR, c1 - q * kBgemmNR);
        kern->threshold(m, nr, dst + (q * kBgemmNR - c0), ldd, thresh + q * kBgemmNR,
                        neg[static_cast<std::size_t>(q)], bits + q, out_halves);
      }
    }
  }

  static void run_task(void* ctx, std::int64_t t, int thread) { static_cast<const ConvRun*>(ctx)->task(t, thread); }

  void execute(int threads, BinaryConv2d::Profile* profile) {
    std::vector<BinaryConv2d::Profile> per_thread;
    if (profile) {
      per_thread.resize(static_cast<std::size_t>(threads));
      prof = &per_thread;
    }
    parallel_run(threads, pool != nullptr ? pooled_tasks : pixel_tiles * n_blocks, run_task, this, micros);
    if (profile) {
      *profile = {};
      for (const auto& p : per_thread) {
        profile->im2col_s += p.im2col_s;
        profile->gemm_s += p.gemm_s;
        profile->epilogue_s += p.epilogue_s;
      }
    }
  }
};

std::shared_ptr<const Borders> BinaryConv2d::borders(std::int64_t h, std::int64_t w, std::int64_t oh,
                                                     std::int64_t ow) const {
  {
    std::lock_guard<std::mutex> lock(borders_->mu);
    if (borders_->last && borders_->last->h == h && borders_->last->w == w) return borders_->last;
  }
  auto b = make_borders(h, w, oh, ow);  // outside the lock: concurrent callers may both build one
  std::lock_guard<std::mutex> lock(borders_->mu);
  borders_->last = b;
  return b;
}

std::shared_ptr<const Borders> BinaryConv2d::make_borders(std::int64_t h, std::int64_t w, std::int64_t oh,
                                                          std::int64_t ow) const {
  const BinaryConv2d& cv = *this;
  auto b = std::make_shared<Borders>();
  b->h = h;
  b->w = w;
  b->rows = make_axis(oh, cv.sh_, cv.ph_, cv.dh_, cv.kh_, h);
  b->cols = make_axis(ow, cv.sw_, cv.pw_, cv.dw_, cv.kw_, w);
  const Axis &rows = b->rows, &cols = b->cols;
  b->correct = cv.pad_value_ == 0 && (rows.distinct.size() > 1 || cols.distinct.size() > 1 || rows.full < 0 ||
                                      cols.full < 0);
  if (b->correct) {
    const std::int64_t nr = static_cast<std::int64_t>(rows.distinct.size());
    const std::int64_t nc = static_cast<std::int64_t>(cols.distinct.size());
    b->corr.assign(static_cast<std::size_t>(nr * nc * cv.o_), 0);
    for (std::int64_t r = 0; r < nr; ++r) {
      for (std::int64_t c = 0; c < nc; ++c) {
        if (r == rows.full && c == cols.full) continue;
        const Range ry = rows.distinct[static_cast<std::size_t>(r)], rx = cols.distinct[static_cast<std::size_t>(c)];
        // sum over the taps outside the box = all taps - the box
        const std::int64_t px = cv.kw_ + 1, o_ = cv.o_;
        const std::int32_t* pre = cv.tap_prefix_.data();
        const std::int32_t* all = pre + (cv.kh_ * px + cv.kw_) * o_;
        const std::int32_t* p11 = pre + (ry.hi * px + rx.hi) * o_;
        const std::int32_t* p01 = pre + (ry.lo * px + rx.hi) * o_;
        const std::int32_t* p10 = pre + (ry.hi * px + rx.lo) * o_;
        const std::int32_t* p00 = pre + (ry.lo * px + rx.lo) * o_;
        std::int32_t* dst = b->corr.data() + (r * nc + c) * o_;
        for (std::int64_t o = 0; o < o_; ++o) dst[o] = all[o] - (p11[o] - p01[o] - p10[o] + p00[o]);
      }
    }
  }
  return b;
}

void BinaryConv2d::run(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w, std::int32_t* y,
                       int num_threads, Isa isa, Profile* profile) const {
  ConvRun r(*this);
  int threads = num_threads;
  r.setup(x, n, h, w, isa, false, nullptr, false, threads);
  if (r.np == 0) return;
  r.y = y;
  r.execute(threads, profile);
}

void BinaryConv2d::run_float(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w,
                             const FloatStage& stage, float* y, int num_threads, Isa isa, Profile* profile) const {
  ConvRun r(*this);
  int threads = num_threads;
  // The packed signs are made per task from whole output rows: no output-channel split.
  r.setup(x, n, h, w, isa, false, nullptr, stage.signs != nullptr, threads);
  if (r.np == 0) return;
  r.stage = &stage;
  r.fy = y;
  r.execute(threads, profile);
}

void BinaryConv2d::run_threshold(const std::uint64_t* x, std::int64_t n, std::int64_t h, std::int64_t w,
                                 const std::int32_t* thresh, const std::int8_t* flip, std::uint64_t* out,
                                 int num_threads, Isa isa, const BitPool* pool, Profile* profile) const {
  ConvRun r(*this);
  int threads = num_threads;
  r.setup(x, n, h, w, isa, true, pool, false, threads);
  const std::int64_t out_words = words_for(o_);
  if (r.np == 0) return;
  r.out_halves = 2 * out_words;
  // The stage writes one 32-bit half per 32 channels: an odd count leaves the last word's
  // upper half to clear (the fused pool clears its bands).
  if (pool == nullptr && (o_ + kBgemmNR - 1) / kBgemmNR < r.out_halves) {
    std::memset(out, 0, static_cast<std::size_t>(r.np * out_words) * 8);
  }
  r.neg.assign(static_cast<std::size_t>((o_ + kBgemmNR - 1) / kBgemmNR), 0u);
  for (std::int64_t i = 0; i < o_; ++i) {
    if (flip[i] < 0) r.neg[static_cast<std::size_t>(i / kBgemmNR)] |= 1u << (i % kBgemmNR);
  }
  r.thresh = thresh;
  // uint64 output word q = halves 2q (bits 0..31) and 2q + 1 (bits 32..63): little endian.
  static_assert(kBgemmNR == 32, "the threshold stage writes one 32-bit half per 32 channels");
  if (pool != nullptr) {
    r.pooled = out;
  } else {
    r.out = reinterpret_cast<std::uint32_t*>(out);
  }
  r.execute(threads, profile);
}

}  // namespace onebit
