// Python bindings of the onebit kernels (module onebit._core).
//
// The Python glue (onebit.runtime) checks arguments first and raises onebit's own
// errors; the checks here are the last guard: every array argument is taken untyped and
// checked by hand (dtype, rank, C-contiguity, shapes, padding bits), so a bad call raises
// ValueError with a message instead of crashing or reading out of bounds. Kernels run
// with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bconv.h"
#include "bgemm.h"
#include "bitpack.h"
#include "channel_ops.h"
#include "fconv.h"
#include "finite.h"
#include "fgemm_bw.h"
#include "dispatch.h"
#include "embedding.h"
#include "executor.h"
#include "layout.h"
#include "threadpool.h"

namespace nb = nanobind;

namespace {

using AnyArray = nb::ndarray<nb::ro, nb::device::cpu>;

template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<2>> new_matrix(std::int64_t rows, std::int64_t cols) {
  const std::size_t count = static_cast<std::size_t>(rows * cols > 0 ? rows * cols : 1);
  T* data = new T[count];
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return nb::ndarray<nb::numpy, T, nb::ndim<2>>(
      data, {static_cast<std::size_t>(rows), static_cast<std::size_t>(cols)}, owner);
}

template <typename T>
const char* dtype_name();
template <>
const char* dtype_name<float>() { return "float32"; }
template <>
const char* dtype_name<std::uint64_t>() { return "uint64"; }
template <>
const char* dtype_name<std::int32_t>() { return "int32"; }
template <>
const char* dtype_name<std::int8_t>() { return "int8"; }

std::string shape_str(const AnyArray& x) {
  std::string s = "(";
  for (std::size_t i = 0; i < x.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(x.shape(i));
  }
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// (MACs, seconds) of one run of a peak loop on this thread, the GIL released.
std::pair<std::uint64_t, double> timed_peak(std::uint64_t (*peak)(std::int64_t), std::int64_t iters) {
  nb::gil_scoped_release release;
  const auto t0 = std::chrono::steady_clock::now();
  const std::uint64_t macs = peak(iters);
  return {macs, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

// Checks dtype, rank and C-contiguity; returns the typed data pointer.
template <typename T>
const T* checked(const AnyArray& x, std::size_t ndim, const char* fn, const char* what) {
  if (x.dtype() != nb::dtype<T>()) {
    throw std::invalid_argument(std::string(fn) + ": " + what + " must be " + dtype_name<T>());
  }
  if (x.ndim() != ndim) {
    throw std::invalid_argument(std::string(fn) + ": " + what + " must be " + std::to_string(ndim) +
                                "-D, got shape " + shape_str(x));
  }
  // An array with no elements is contiguous whatever its strides (numpy gives them 0).
  std::int64_t expect = x.size() == 0 ? -1 : 1;
  for (std::size_t i = ndim; i-- > 0 && expect > 0;) {
    if (x.shape(i) > 1 && x.stride(i) != expect) {
      throw std::invalid_argument(std::string(fn) + ": " + what +
                                  " must be C-contiguous (use numpy.ascontiguousarray)");
    }
    expect *= static_cast<std::int64_t>(x.shape(i));
  }
  return static_cast<const T*>(x.data());
}

int checked_threads(int num_threads, const char* fn) {
  if (num_threads == 0) return onebit::default_num_threads();
  if (num_threads < 0 || num_threads > onebit::kMaxThreads) {
    throw std::invalid_argument(std::string(fn) + ": num_threads must be in 1.." +
                                std::to_string(onebit::kMaxThreads) + " (0 = default), got " +
                                std::to_string(num_threads));
  }
  return num_threads;
}

// Activations: 2-D uint64 (M, words) matching the weights, zero tail bits.
const std::uint64_t* checked_activations(const AnyArray& a, const onebit::PackedWeights& w, const char* fn) {
  const std::uint64_t* data = checked<std::uint64_t>(a, 2, fn, "a");
  if (static_cast<std::int64_t>(a.shape(1)) != w.words()) {
    throw std::invalid_argument(std::string(fn) + ": a has " + std::to_string(a.shape(1)) +
                                " words per row but the weights have k=" + std::to_string(w.k()) + " (" +
                                std::to_string(w.words()) + " words)");
  }
  const std::int64_t bad = onebit::first_row_with_tail_bits(data, static_cast<std::int64_t>(a.shape(0)),
                                                            w.words(), w.k());
  if (bad >= 0) {
    throw std::invalid_argument(std::string(fn) + ": row " + std::to_string(bad) +
                                " of a has bits set beyond k=" + std::to_string(w.k()) +
                                " (padding bits must be 0, as pack_bits writes them)");
  }
  return data;
}

template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<4>> new_array4(std::int64_t d0, std::int64_t d1, std::int64_t d2, std::int64_t d3) {
  const std::int64_t total = d0 * d1 * d2 * d3;
  T* data = new T[static_cast<std::size_t>(total > 0 ? total : 1)];
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return nb::ndarray<nb::numpy, T, nb::ndim<4>>(
      data, {static_cast<std::size_t>(d0), static_cast<std::size_t>(d1), static_cast<std::size_t>(d2),
             static_cast<std::size_t>(d3)},
      owner);
}

// A new C-contiguous array of the given shape.
template <typename T>
nb::ndarray<nb::numpy, T> new_array(const std::vector<std::size_t>& shape) {
  std::size_t total = 1;
  for (std::size_t d : shape) total *= d;
  T* data = new T[total > 0 ? total : 1];
  nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
  return nb::ndarray<nb::numpy, T>(data, shape.size(), shape.data(), owner);
}

// Float32 rows of C channels (the last axis): the data, the row count and C. At least 1-D.
struct ChannelRows {
  const float* data;
  std::int64_t rows, c;
  std::vector<std::size_t> shape;

  ChannelRows(const AnyArray& x, const char* fn) {
    if (x.ndim() < 1) throw std::invalid_argument(std::string(fn) + ": x must be at least 1-D");
    data = checked<float>(x, x.ndim(), fn, "x");
    for (std::size_t i = 0; i < x.ndim(); ++i) shape.push_back(static_cast<std::size_t>(x.shape(i)));
    c = static_cast<std::int64_t>(shape.back());
    rows = c > 0 ? static_cast<std::int64_t>(x.size()) / c : 0;
  }

  // A per-channel float32 vector of C entries.
  const float* vector(const AnyArray& v, const char* fn, const char* name) const {
    const float* d = checked<float>(v, 1, fn, name);
    if (static_cast<std::int64_t>(v.shape(0)) != c) {
      throw std::invalid_argument(std::string(fn) + ": " + name + " needs " + std::to_string(c) +
                                  " entries (one per channel of x's last axis), got " + shape_str(v));
    }
    return d;
  }
};

// An int v (-> (v, v)) or a tuple/list of two ints.
std::array<std::int64_t, 2> pair_arg(nb::handle h, const char* fn, const char* what) {
  std::int64_t a = 0, b = 0;
  if (!nb::isinstance<nb::bool_>(h) && nb::try_cast<std::int64_t>(h, a)) return {a, a};
  if ((nb::isinstance<nb::tuple>(h) || nb::isinstance<nb::list>(h)) && nb::len(h) == 2) {
    nb::object x0 = h[0], x1 = h[1];
    if (!nb::isinstance<nb::bool_>(x0) && !nb::isinstance<nb::bool_>(x1) && nb::try_cast<std::int64_t>(x0, a) &&
        nb::try_cast<std::int64_t>(x1, b)) {
      return {a, b};
    }
  }
  throw std::invalid_argument(std::string(fn) + ": " + what + " must be an int or a pair of ints, got " +
                              nb::cast<std::string>(nb::repr(h)));
}

// An optional bottom/right padding: None gives {-1, -1}, "the same as padding".
std::array<std::int64_t, 2> end_arg(nb::handle h, const char* fn, const char* what) {
  return h.is_none() ? std::array<std::int64_t, 2>{-1, -1} : pair_arg(h, fn, what);
}

nb::tuple pair_tuple(const std::array<std::int64_t, 2>& p) { return nb::make_tuple(p[0], p[1]); }

// Packed NHWC activations: 4-D uint64 (N, H, W, ceil(channels / 64)), zero tail bits.
const std::uint64_t* checked_nhwc(const AnyArray& x, std::int64_t channels, const char* fn) {
  const std::uint64_t* data = checked<std::uint64_t>(x, 4, fn, "x");
  if (static_cast<std::int64_t>(x.shape(3)) != onebit::words_for(channels)) {
    throw std::invalid_argument(std::string(fn) + ": x has " + std::to_string(x.shape(3)) +
                                " words per pixel but " + std::to_string(channels) + " channels need " +
                                std::to_string(onebit::words_for(channels)) + " (x must be (N, H, W, ceil(C/64)))");
  }
  const auto pixels = static_cast<std::int64_t>(x.shape(0) * x.shape(1) * x.shape(2));
  const std::int64_t bad = onebit::first_row_with_tail_bits(data, pixels, onebit::words_for(channels), channels);
  if (bad >= 0) {
    const std::int64_t w = static_cast<std::int64_t>(x.shape(2)), hw = static_cast<std::int64_t>(x.shape(1)) * w;
    throw std::invalid_argument(std::string(fn) + ": pixel (" + std::to_string(bad / hw) + ", " +
                                std::to_string(bad % hw / w) + ", " + std::to_string(bad % w) +
                                ") of x has bits set beyond channel " + std::to_string(channels) +
                                " (padding bits must be 0, as pack_bits writes them)");
  }
  return data;
}

// Per-output-channel thresholds (int32) and flips (int8, +-1) of a threshold output stage.
void check_thresholds(const AnyArray& thresholds, const AnyArray& flips, std::int64_t n, const char* fn,
                      const char* flips_name, const std::int32_t** t, const std::int8_t** f) {
  *t = checked<std::int32_t>(thresholds, 1, fn, "thresholds");
  *f = checked<std::int8_t>(flips, 1, fn, flips_name);
  if (static_cast<std::int64_t>(thresholds.shape(0)) != n || static_cast<std::int64_t>(flips.shape(0)) != n) {
    throw std::invalid_argument(std::string(fn) + ": thresholds and " + flips_name + " need " + std::to_string(n) +
                                " entries (one per output channel), got " + shape_str(thresholds) + " and " +
                                shape_str(flips));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    if ((*f)[i] != 1 && (*f)[i] != -1) {
      throw std::invalid_argument(std::string(fn) + ": " + flips_name + " must be +1 or -1, got " +
                                  std::to_string((*f)[i]) + " at index " + std::to_string(i));
    }
  }
}

std::vector<std::string> isa_names(const std::vector<onebit::Isa>& isas) {
  std::vector<std::string> out;
  for (onebit::Isa isa : isas) out.emplace_back(onebit::isa_name(isa));
  return out;
}

// The checked arguments of a BinaryConv2d call: packed NHWC input, threads, ISA, sizes.
struct ConvCall {
  const std::uint64_t* data;
  int threads;
  onebit::Isa isa;
  std::int64_t n, h, w, oh, ow;

  ConvCall(const onebit::BinaryConv2d& conv, const AnyArray& x, int num_threads, const std::string& isa_name,
           const char* fn)
      : data(checked_nhwc(x, conv.in_channels(), fn)),
        threads(checked_threads(num_threads, fn)),
        isa(onebit::resolve_isa(isa_name)),
        n(static_cast<std::int64_t>(x.shape(0))),
        h(static_cast<std::int64_t>(x.shape(1))),
        w(static_cast<std::int64_t>(x.shape(2))) {
    const auto shape = conv.output_shape(h, w);
    oh = shape[0];
    ow = shape[1];
  }
};

// The float output stage arguments (float_stage.h) of run_float / bgemm_float, checked:
// scale, bias (and post_scale, post_bias together or neither) float32 vectors of n entries,
// act one of none, relu, hardtanh. Holds the post arrays for the call.
struct StageArgs {
  onebit::FloatStage stage{nullptr, nullptr, 0, nullptr, nullptr};
  AnyArray ps, pb;

  // A float32 vector of n entries.
  static const float* vector(const AnyArray& arr, std::int64_t n, const char* fn, const char* name) {
    const float* data = checked<float>(arr, 1, fn, name);
    if (static_cast<std::int64_t>(arr.shape(0)) != n) {
      throw std::invalid_argument(std::string(fn) + ": " + name + " needs " + std::to_string(n) +
                                  " entries (one per output channel), got " + shape_str(arr));
    }
    return data;
  }

  StageArgs(const AnyArray& scale, const AnyArray& bias, const std::string& act, nb::handle post_scale,
            nb::handle post_bias, std::int64_t n, const char* fn) {
    stage.scale = vector(scale, n, fn, "scale");
    stage.bias = vector(bias, n, fn, "bias");
    if (act == "relu") {
      stage.act = 1;
    } else if (act == "hardtanh") {
      stage.act = 2;
    } else if (act != "none") {
      throw std::invalid_argument(std::string(fn) + ": act must be one of none, relu, hardtanh, got '" + act + "'");
    }
    if (post_scale.is_none() != post_bias.is_none()) {
      throw std::invalid_argument(std::string(fn) + ": post_scale and post_bias must be given together");
    }
    if (!post_scale.is_none()) {
      if (!nb::try_cast(post_scale, ps) || !nb::try_cast(post_bias, pb)) {
        throw std::invalid_argument(std::string(fn) + ": post_scale and post_bias must be numpy arrays");
      }
      stage.post_scale = vector(ps, n, fn, "post_scale");
      stage.post_bias = vector(pb, n, fn, "post_bias");
    }
  }
};

// The optional fused pool of BinaryConv2d.run_threshold: pool = (kernel, stride, padding)
// (each an int or a pair) with and_mask (words_for(O) uint64, as bmaxpool2d takes), or
// neither. Sets oh, ow to the pooled size.
struct ThresholdPool {
  onebit::BinaryConv2d::BitPool spec{};
  const onebit::BinaryConv2d::BitPool* ptr = nullptr;

  ThresholdPool(const onebit::BinaryConv2d& conv, nb::handle pool, nb::handle and_mask, ConvCall& c, const char* fn) {
    if (pool.is_none() != and_mask.is_none()) {
      throw std::invalid_argument(std::string(fn) + ": pool and and_mask must be given together");
    }
    if (pool.is_none()) return;
    if (!(nb::isinstance<nb::tuple>(pool) || nb::isinstance<nb::list>(pool)) || nb::len(pool) < 3 ||
        nb::len(pool) > 4) {
      throw std::invalid_argument(std::string(fn) + ": pool must be (kernel, stride, padding[, padding_end]), got " +
                                  nb::cast<std::string>(nb::repr(pool)));
    }
    spec.kernel = pair_arg(pool[0], fn, "pool kernel");
    spec.stride = pair_arg(pool[1], fn, "pool stride");
    spec.padding = pair_arg(pool[2], fn, "pool padding");
    if (nb::len(pool) == 4) spec.padding_end = end_arg(pool[3], fn, "pool padding_end");
    AnyArray mask;
    if (!nb::try_cast(and_mask, mask)) throw std::invalid_argument(std::string(fn) + ": and_mask must be a numpy array");
    const std::int64_t o = conv.out_channels(), words = onebit::words_for(o);
    spec.and_mask = checked<std::uint64_t>(mask, 1, fn, "and_mask");
    if (static_cast<std::int64_t>(mask.shape(0)) != words) {
      throw std::invalid_argument(std::string(fn) + ": and_mask must have " + std::to_string(words) + " words for " +
                                  std::to_string(o) + " output channels, got shape " + shape_str(mask));
    }
    if (onebit::first_row_with_tail_bits(spec.and_mask, 1, words, o) >= 0) {
      throw std::invalid_argument(std::string(fn) + ": and_mask has bits set beyond channel " + std::to_string(o) +
                                  " (padding bits must be 0)");
    }
    const auto shape =
        onebit::bmaxpool2d_output_shape(c.oh, c.ow, spec.kernel, spec.stride, spec.padding, spec.padding_end);
    c.oh = shape[0];
    c.ow = shape[1];
    ptr = &spec;
  }
};


// The output stage and pool arguments of FloatConv2d.run, checked.
struct FconvArgs {
  onebit::FconvStage stage;
  onebit::FconvPool pool;
};

FconvArgs fconv_args(const onebit::FloatConv2d& conv, nb::handle scale, nb::handle bias, const std::string& act,
                     bool bits, nb::handle pool, const char* fn) {
  FconvArgs a;
  const std::int64_t o = conv.out_channels();
  if (scale.is_none() != bias.is_none()) {
    throw std::invalid_argument(std::string(fn) + ": scale and bias must be given together");
  }
  if (!scale.is_none()) {
    for (const auto& [h, name, dst] : {std::tuple{scale, "scale", &a.stage.scale}, std::tuple{bias, "bias", &a.stage.bias}}) {
      const AnyArray arr = nb::cast<AnyArray>(h);
      *dst = checked<float>(arr, 1, fn, name);
      if (static_cast<std::int64_t>(arr.shape(0)) != o) {
        throw std::invalid_argument(std::string(fn) + ": " + name + " needs " + std::to_string(o) +
                                    " entries (one per output channel), got " + shape_str(arr));
      }
    }
  }
  if (act == "none") {
    a.stage.act = onebit::FconvAct::none;
  } else if (act == "relu") {
    a.stage.act = onebit::FconvAct::relu;
  } else if (act == "hardtanh") {
    a.stage.act = onebit::FconvAct::hardtanh;
  } else {
    throw std::invalid_argument(std::string(fn) + ": act must be one of none, relu, hardtanh, got '" + act + "'");
  }
  if ((bits || a.stage.act != onebit::FconvAct::none) && a.stage.scale == nullptr) {
    throw std::invalid_argument(std::string(fn) + ": bits and act need scale and bias");
  }
  if (bits && a.stage.act != onebit::FconvAct::none) {
    throw std::invalid_argument(std::string(fn) + ": bits output takes no act");
  }
  a.stage.bits = bits;
  if (!pool.is_none()) {
    if (!(nb::isinstance<nb::tuple>(pool) || nb::isinstance<nb::list>(pool)) || nb::len(pool) < 3 ||
        nb::len(pool) > 4) {
      throw std::invalid_argument(std::string(fn) + ": pool must be None or (kernel, stride, padding[, padding_end])");
    }
    a.pool.on = true;
    a.pool.kernel = pair_arg(pool[0], fn, "pool kernel");
    a.pool.stride = pair_arg(pool[1], fn, "pool stride");
    a.pool.padding = pair_arg(pool[2], fn, "pool padding");
    if (nb::len(pool) == 4) a.pool.padding_end = end_arg(pool[3], fn, "pool padding_end");
  }
  return a;
}

// Float NHWC input: 4-D float32 (N, H, W, channels).
const float* checked_float_nhwc(const AnyArray& x, std::int64_t channels, const char* fn) {
  const float* data = checked<float>(x, 4, fn, "x");
  if (static_cast<std::int64_t>(x.shape(3)) != channels) {
    throw std::invalid_argument(std::string(fn) + ": x has " + std::to_string(x.shape(3)) + " channels, expected " +
                                std::to_string(channels) + " (x must be (N, H, W, C) float32)");
  }
  return data;
}

// ---- the graph executor (executor.h): a Plan's steps, each bound at load ----
//
// Each step method checks its value ids against the sizes the node implies and copies the
// node's per-channel vectors into the step; kernel objects (weights, convolutions) are kept
// alive by the Plan (nb::keep_alive). The steps call the same kernels with the same
// arguments as the Python runtime's node closures (onebit/runtime/ops.py).

using onebit::Plan;

// Value `id` of `plan` must hold `per_sample` elements of float32 (bits = false) or uint64.
void need_value(const Plan& plan, int id, std::int64_t per_sample, bool bits, const char* fn, const char* what) {
  if (id < 0 || id >= plan.num_values()) {
    throw std::invalid_argument(std::string(fn) + ": " + what + " is not a value of the plan (id " + std::to_string(id) + ")");
  }
  if (plan.per_sample(id) != per_sample || plan.elem_bytes(id) != (bits ? 8 : 4)) {
    throw std::invalid_argument(std::string(fn) + ": " + what + " must hold " + std::to_string(per_sample) + " " +
                                (bits ? "uint64 words" : "float32") + " per sample, value " + std::to_string(id) +
                                " holds " + std::to_string(plan.per_sample(id)) + " elements of " +
                                std::to_string(plan.elem_bytes(id)) + " bytes");
  }
}

// A copy of a float32 vector of n entries (a node's per-channel parameters); empty for None.
std::vector<float> copy_vector(nb::handle h, std::int64_t n, const char* fn, const char* name) {
  if (h.is_none()) return {};
  AnyArray a;
  if (!nb::try_cast(h, a)) throw std::invalid_argument(std::string(fn) + ": " + name + " must be a numpy array");
  const float* d = StageArgs::vector(a, n, fn, name);
  return std::vector<float>(d, d + n);
}

const float* data_or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

int act_code(const std::string& act, const char* fn) {
  if (act == "none") return 0;
  if (act == "relu") return 1;
  if (act == "hardtanh") return 2;
  throw std::invalid_argument(std::string(fn) + ": act must be one of none, relu, hardtanh, got '" + act + "'");
}

// (kernel, stride, padding, padding_end) of a pool tuple, as FconvPool.
onebit::FconvPool pool_tuple(nb::handle pool, const char* fn) {
  onebit::FconvPool p;
  if (pool.is_none()) return p;
  if (!(nb::isinstance<nb::tuple>(pool) || nb::isinstance<nb::list>(pool)) || nb::len(pool) != 4) {
    throw std::invalid_argument(std::string(fn) + ": pool must be None or (kernel, stride, padding, padding_end)");
  }
  p.on = true;
  p.kernel = pair_arg(pool[0], fn, "pool kernel");
  p.stride = pair_arg(pool[1], fn, "pool stride");
  p.padding = pair_arg(pool[2], fn, "pool padding");
  p.padding_end = end_arg(pool[3], fn, "pool padding_end");
  return p;
}

// The numpy output stage of a dense node after a float product (ops._output_stage): z = y;
// z *= scale (unless unit); z += bias (unless zero); bits: packed signs; else act, then
// z * post_scale + post_bias. Each step rounded to float32, in place on y.
struct DenseStage {
  std::vector<float> scale, bias, post_scale, post_bias;
  int act = 0;
  bool bits = false;

  void operator()(float* y, std::int64_t rows, std::int64_t c, void* out, int threads, onebit::Isa isa) const {
    for (std::int64_t r = 0; r < rows; ++r) {
      float* z = y + r * c;
      if (!scale.empty()) for (std::int64_t j = 0; j < c; ++j) z[j] = z[j] * scale[static_cast<std::size_t>(j)];
      if (!bias.empty()) for (std::int64_t j = 0; j < c; ++j) z[j] = z[j] + bias[static_cast<std::size_t>(j)];
    }
    if (bits) {
      onebit::pack_rows_f32(y, rows, c, static_cast<std::uint64_t*>(out), threads, isa);
      return;
    }
    float* o = static_cast<float*>(out);
    if (act == 1) {
      onebit::relu_f32(y, rows * c, o, threads, isa);
    } else if (act == 2) {
      onebit::clip_f32(y, rows * c, -1.0f, 1.0f, o, threads, isa);
    } else {
      std::memcpy(o, y, static_cast<std::size_t>(rows * c) * sizeof(float));
    }
    if (!post_scale.empty()) {
      for (std::int64_t r = 0; r < rows; ++r) {
        float* z = o + r * c;
        for (std::int64_t j = 0; j < c; ++j) z[j] = z[j] * post_scale[static_cast<std::size_t>(j)];
        for (std::int64_t j = 0; j < c; ++j) z[j] = z[j] + post_bias[static_cast<std::size_t>(j)];
      }
    }
  }
};

template <typename T>
T* at(void* const* slots, int id) { return static_cast<T*>(slots[id]); }

// fmaxpool2d_rows' row source for a DenseNet transition: row i of image b of the parts'
// concatenation through the BatchNorm affine (channel_affine_parts' arithmetic).
struct AffinePartsRows {
  std::vector<const float*> parts;
  std::vector<std::int64_t> channels;
  std::int64_t h, w;
  const float* scale;
  const float* bias;
  onebit::Isa isa;

  static void row(const void* ctx, std::int64_t b, std::int64_t i, float* out) {
    const auto& r = *static_cast<const AffinePartsRows*>(ctx);
    const std::int64_t pixel = (b * r.h + i) * r.w;
    const float* at_row[256];
    std::vector<const float*> many;
    const float** p = at_row;
    if (r.parts.size() > 256) {
      many.resize(r.parts.size());
      p = many.data();
    }
    for (std::size_t k = 0; k < r.parts.size(); ++k) p[k] = r.parts[k] + pixel * r.channels[k];
    onebit::channel_affine_parts_serial(p, r.channels.data(), static_cast<int>(r.parts.size()), r.w, r.scale, r.bias,
                                        out, r.isa);
  }
};

void bind_plan(nb::module_& m) {
  nb::class_<Plan>(m, "Plan",
                   "The graph executor's program (csrc/executor.h): values and kernel steps bound at load, run "
                   "for a batch in C++ with one arena for the intermediate values. Built by onebit.runtime.executor.")
      .def(nb::init<>())
      .def(
          "value", [](Plan& p, std::int64_t per_sample, bool bits) { return p.value(per_sample, bits ? 8 : 4); },
          nb::arg("per_sample"), nb::arg("bits"),
          "A new value of per_sample float32 (bits=False) or uint64 words (bits=True) per sample; its id.")
      .def("set_io", &Plan::set_io, nb::arg("inputs"), nb::arg("outputs"))
      .def_prop_ro("num_steps", &Plan::num_steps)
      .def("arena_bytes", &Plan::arena_bytes, nb::arg("n"), "Bytes of the intermediate values' arena at batch n.")
      .def("set_profile", &Plan::set_profile, nb::arg("on"),
           "With profiling on, run() adds each step's wall time to step_seconds().")
      .def("step_seconds", &Plan::step_seconds, "Seconds per step, in order, summed over the profiled runs.")
      .def("reset_profile", &Plan::reset_profile)
      .def(
          "run",
          [](Plan& p, const std::vector<AnyArray>& inputs, std::int64_t n, int num_threads) {
            const char* fn = "Plan.run";
            const int threads = checked_threads(num_threads, fn);
            if (n < 1) throw std::invalid_argument("Plan.run: n must be >= 1, got " + std::to_string(n));
            if (inputs.size() != p.inputs().size()) {
              throw std::invalid_argument("Plan.run: needs " + std::to_string(p.inputs().size()) + " inputs, got " +
                                          std::to_string(inputs.size()));
            }
            std::vector<const void*> in;
            for (std::size_t i = 0; i < inputs.size(); ++i) {
              const int id = p.inputs()[i];
              const AnyArray& a = inputs[i];
              const void* data = p.elem_bytes(id) == 8 ? static_cast<const void*>(checked<std::uint64_t>(a, a.ndim(), fn, "input"))
                                                       : static_cast<const void*>(checked<float>(a, a.ndim(), fn, "input"));
              if (static_cast<std::int64_t>(a.size()) != n * p.per_sample(id)) {
                throw std::invalid_argument("Plan.run: input " + std::to_string(i) + " must hold " +
                                            std::to_string(n * p.per_sample(id)) + " elements, got " + shape_str(a));
              }
              in.push_back(data);
            }
            std::vector<nb::object> outs;
            std::vector<void*> out;
            for (int id : p.outputs()) {
              if (p.elem_bytes(id) == 8) {
                auto arr = new_matrix<std::uint64_t>(n, p.per_sample(id));
                out.push_back(arr.data());
                outs.push_back(nb::cast(arr));
              } else {
                auto arr = new_matrix<float>(n, p.per_sample(id));
                out.push_back(arr.data());
                outs.push_back(nb::cast(arr));
              }
            }
            {
              nb::gil_scoped_release release;
              p.run(in, out, n, threads);
            }
            return outs;
          },
          nb::arg("inputs"), nb::arg("n"), nb::arg("num_threads") = 0,
          "Runs the plan on a batch of n: inputs in set_io's order (C-contiguous, n * per_sample elements "
          "each); returns the outputs as (n, per_sample) arrays.")
      .def(
          "to_nhwc",
          [](Plan& p, int src, int dst, std::int64_t c, std::int64_t h, std::int64_t w) {
            const char* fn = "Plan.to_nhwc";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, c * h * w, false, fn, "src");
            need_value(p, dst, c * h * w, false, fn, "dst");
            p.step("to_nhwc", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::nchw_to_nhwc(at<const float>(s, src), n, c, h, w, at<float>(s, dst), threads);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("h"), nb::arg("w"))
      .def(
          "pack",
          [](Plan& p, int src, int dst, std::int64_t c, nb::handle shift) {
            const char* fn = "Plan.pack";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (c < 1 || p.per_sample(src) % c) throw std::invalid_argument("Plan.pack: c must divide the source's size");
            const std::int64_t rows = p.per_sample(src) / c;
            need_value(p, src, rows * c, false, fn, "src");
            need_value(p, dst, rows * onebit::words_for(c), true, fn, "dst");
            std::vector<float> sh = copy_vector(shift, c, fn, "shift");
            p.step("sign", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              if (sh.empty()) {
                onebit::pack_rows_f32(at<const float>(s, src), n * rows, c, at<std::uint64_t>(s, dst), threads, isa);
              } else {
                onebit::pack_shifted(at<const float>(s, src), n * rows, c, sh.data(), at<std::uint64_t>(s, dst),
                                     threads, isa);
              }
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("shift").none())
      .def(
          "pack_parts",
          [](Plan& p, const std::vector<int>& srcs, const std::vector<std::int64_t>& channels, int dst,
                nb::handle shift, nb::handle scale, nb::handle bias) {
            const char* fn = "Plan.pack_parts";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (srcs.empty() || srcs.size() != channels.size()) {
              throw std::invalid_argument("Plan.pack_parts: one channel count per part, at least one part");
            }
            std::int64_t c = 0;
            for (std::int64_t ci : channels) {
              if (ci < 1) throw std::invalid_argument("Plan.pack_parts: channel counts must be >= 1");
              c += ci;
            }
            if (p.per_sample(srcs[0]) % channels[0]) throw std::invalid_argument("Plan.pack_parts: bad part size");
            const std::int64_t rows = p.per_sample(srcs[0]) / channels[0];
            for (std::size_t i = 0; i < srcs.size(); ++i) need_value(p, srcs[i], rows * channels[i], false, fn, "part");
            need_value(p, dst, rows * onebit::words_for(c), true, fn, "dst");
            if (scale.is_none() != bias.is_none()) throw std::invalid_argument("Plan.pack_parts: scale and bias together");
            std::vector<float> sh = copy_vector(shift, c, fn, "shift"), sc = copy_vector(scale, c, fn, "scale"),
                               bi = copy_vector(bias, c, fn, "bias");
            p.step("sign of parts", srcs, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              std::vector<const float*> parts;
              for (int id : srcs) parts.push_back(at<const float>(s, id));
              onebit::pack_shifted_parts(parts.data(), channels.data(), static_cast<int>(parts.size()), n * rows,
                                         data_or_null(sc), data_or_null(bi), data_or_null(sh),
                                         at<std::uint64_t>(s, dst), threads, isa);
            });
          },
          nb::arg("srcs"), nb::arg("channels"), nb::arg("dst"), nb::arg("shift").none(), nb::arg("scale").none(),
          nb::arg("bias").none())
      .def(
          "bgemm_threshold",
          [](Plan& p, int src, int dst, const onebit::PackedWeights& w, const AnyArray& thresholds,
                const AnyArray& flips) {
            const char* fn = "Plan.bgemm_threshold";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, w.words(), true, fn, "src");
            need_value(p, dst, onebit::words_for(w.n()), true, fn, "dst");
            const std::int32_t* t;
            const std::int8_t* f;
            check_thresholds(thresholds, flips, w.n(), fn, "flips", &t, &f);
            std::vector<std::int32_t> tv(t, t + w.n());
            std::vector<std::int8_t> fv(f, f + w.n());
            const onebit::PackedWeights* wp = &w;
            p.step("dense", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::bgemm_threshold(at<const std::uint64_t>(s, src), n, *wp, tv.data(), fv.data(),
                                      at<std::uint64_t>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("weights"), nb::arg("thresholds"), nb::arg("flips"),
          nb::keep_alive<1, 4>())
      .def(
          "bgemm_float",
          [](Plan& p, int src, int dst, const onebit::PackedWeights& w, nb::handle scale, nb::handle bias,
                const std::string& act, nb::handle post_scale, nb::handle post_bias) {
            const char* fn = "Plan.bgemm_float";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, w.words(), true, fn, "src");
            need_value(p, dst, w.n(), false, fn, "dst");
            if (post_scale.is_none() != post_bias.is_none()) throw std::invalid_argument("Plan.bgemm_float: post_scale and post_bias together");
            auto v = std::make_shared<std::array<std::vector<float>, 4>>(std::array<std::vector<float>, 4>{
                copy_vector(scale, w.n(), fn, "scale"), copy_vector(bias, w.n(), fn, "bias"),
                copy_vector(post_scale, w.n(), fn, "post_scale"), copy_vector(post_bias, w.n(), fn, "post_bias")});
            if ((*v)[0].empty() || (*v)[1].empty()) throw std::invalid_argument("Plan.bgemm_float: scale and bias are required");
            const int a = act_code(act, fn);
            const onebit::PackedWeights* wp = &w;
            p.step("dense", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              const onebit::FloatStage stage{(*v)[0].data(), (*v)[1].data(), a, data_or_null((*v)[2]), data_or_null((*v)[3])};
              onebit::bgemm_float(at<const std::uint64_t>(s, src), n, *wp, stage, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("weights"), nb::arg("scale"), nb::arg("bias"), nb::arg("act"),
          nb::arg("post_scale").none(), nb::arg("post_bias").none(), nb::keep_alive<1, 4>())
      .def(
          "fgemm_bw",
          [](Plan& p, int src, int dst, const onebit::BinaryWeightsF32& w) {
            const char* fn = "Plan.fgemm_bw";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, w.k(), false, fn, "src");
            need_value(p, dst, w.n(), false, fn, "dst");
            const onebit::BinaryWeightsF32* wp = &w;
            p.step("dense product", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::fgemm_bw(at<const float>(s, src), n, *wp, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("weights"), nb::keep_alive<1, 4>())
      .def(
          "dense_stage",
          [](Plan& p, int src, int dst, std::int64_t c, nb::handle scale, nb::handle bias, const std::string& act,
                nb::handle post_scale, nb::handle post_bias, bool bits) {
            const char* fn = "Plan.dense_stage";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, c, false, fn, "src");
            need_value(p, dst, bits ? onebit::words_for(c) : c, bits, fn, "dst");
            DenseStage st;
            st.scale = copy_vector(scale, c, fn, "scale");
            st.bias = copy_vector(bias, c, fn, "bias");
            st.post_scale = copy_vector(post_scale, c, fn, "post_scale");
            st.post_bias = copy_vector(post_bias, c, fn, "post_bias");
            if (st.post_scale.empty() != st.post_bias.empty()) throw std::invalid_argument("Plan.dense_stage: post_scale and post_bias together");
            st.act = act_code(act, fn);
            st.bits = bits;
            // The stage works in place on the product (as numpy's in-place operations do).
            p.step("dense stage", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              st(at<float>(s, src), n, c, s[dst], threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("scale").none(), nb::arg("bias").none(),
          nb::arg("act"), nb::arg("post_scale").none(), nb::arg("post_bias").none(), nb::arg("bits"))
      .def(
          "fconv",
          [](Plan& p, int src, int dst, const onebit::FloatConv2d& conv, std::int64_t h, std::int64_t w,
                nb::handle scale, nb::handle bias, const std::string& act, bool bits, nb::handle pool,
                bool rows_as_pixels) {
            const char* fn = "Plan.fconv";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const std::int64_t o = conv.out_channels();
            need_value(p, src, h * w * conv.in_channels(), false, fn, "src");
            if (rows_as_pixels && (h != 1 || w != 1 || pool.is_none() == false)) {
              throw std::invalid_argument("Plan.fconv: rows_as_pixels needs a 1 x 1 input and no pool");
            }
            const onebit::FconvPool pl = pool_tuple(pool, fn);
            auto shape = conv.output_shape(h, w);
            if (pl.on) shape = onebit::fpool2d_output_shape(shape[0], shape[1], pl.kernel, pl.stride, pl.padding, pl.padding_end);
            need_value(p, dst, shape[0] * shape[1] * (bits ? onebit::words_for(o) : o), bits, fn, "dst");
            if (scale.is_none() != bias.is_none()) throw std::invalid_argument("Plan.fconv: scale and bias together");
            auto v = std::make_shared<std::array<std::vector<float>, 2>>(
                std::array<std::vector<float>, 2>{copy_vector(scale, o, fn, "scale"), copy_vector(bias, o, fn, "bias")});
            const onebit::FconvAct a = static_cast<onebit::FconvAct>(act_code(act, fn));
            if ((bits || a != onebit::FconvAct::none) && (*v)[0].empty()) throw std::invalid_argument("Plan.fconv: bits and act need scale and bias");
            const onebit::FloatConv2d* cp = &conv;
            p.step("conv2d", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::FconvStage st;
              st.scale = data_or_null((*v)[0]);
              st.bias = data_or_null((*v)[1]);
              st.act = a;
              st.bits = bits;
              // A dense node's product runs as one row of n pixels on one thread (ops._float_input_product).
              if (rows_as_pixels) {
                cp->run(at<const float>(s, src), 1, 1, n, st, pl, s[dst], 1, isa);
              } else {
                cp->run(at<const float>(s, src), n, h, w, st, pl, s[dst], threads, isa);
              }
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("conv"), nb::arg("h"), nb::arg("w"), nb::arg("scale").none(),
          nb::arg("bias").none(), nb::arg("act"), nb::arg("bits"), nb::arg("pool").none(), nb::arg("rows_as_pixels"),
          nb::keep_alive<1, 4>())
      .def(
          "bconv_threshold",
          [](Plan& p, int src, int dst, const onebit::BinaryConv2d& conv, std::int64_t h, std::int64_t w,
                const AnyArray& thresholds, const AnyArray& flips, nb::handle pool, nb::handle and_mask) {
            const char* fn = "Plan.bconv_threshold";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const std::int64_t o = conv.out_channels();
            need_value(p, src, h * w * onebit::words_for(conv.in_channels()), true, fn, "src");
            const std::int32_t* t;
            const std::int8_t* f;
            check_thresholds(thresholds, flips, o, fn, "flips", &t, &f);
            auto tv = std::make_shared<std::vector<std::int32_t>>(t, t + o);
            auto fv = std::make_shared<std::vector<std::int8_t>>(f, f + o);
            auto shape = conv.output_shape(h, w);
            const bool pooled = !pool.is_none();
            onebit::BinaryConv2d::BitPool bp{};
            auto mask = std::make_shared<std::vector<std::uint64_t>>();
            if (pooled) {
              const onebit::FconvPool pl = pool_tuple(pool, fn);
              AnyArray ma;
              if (!nb::try_cast(and_mask, ma)) throw std::invalid_argument("Plan.bconv_threshold: and_mask must be a numpy array");
              const std::uint64_t* md = checked<std::uint64_t>(ma, 1, fn, "and_mask");
              if (static_cast<std::int64_t>(ma.shape(0)) != onebit::words_for(o) ||
                  onebit::first_row_with_tail_bits(md, 1, onebit::words_for(o), o) >= 0) {
                throw std::invalid_argument("Plan.bconv_threshold: and_mask must be words_for(O) words, tail bits 0");
              }
              mask->assign(md, md + onebit::words_for(o));
              bp = {pl.kernel, pl.stride, pl.padding, nullptr, pl.padding_end};
              shape = onebit::bmaxpool2d_output_shape(shape[0], shape[1], pl.kernel, pl.stride, pl.padding, pl.padding_end);
            }
            need_value(p, dst, shape[0] * shape[1] * onebit::words_for(o), true, fn, "dst");
            const onebit::BinaryConv2d* cp = &conv;
            p.step("conv2d", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::BinaryConv2d::BitPool local = bp;
              local.and_mask = mask->data();
              cp->run_threshold(at<const std::uint64_t>(s, src), n, h, w, tv->data(), fv->data(),
                                at<std::uint64_t>(s, dst), threads, isa, pooled ? &local : nullptr);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("conv"), nb::arg("h"), nb::arg("w"), nb::arg("thresholds"),
          nb::arg("flips"), nb::arg("pool").none(), nb::arg("and_mask").none(), nb::keep_alive<1, 4>())
      .def(
          "bconv_float",
          [](Plan& p, int src, int dst, const onebit::BinaryConv2d& conv, std::int64_t h, std::int64_t w,
                nb::handle scale, nb::handle bias, const std::string& act, nb::handle post_scale, nb::handle post_bias,
                int residual, nb::handle prelu, int bits_dst, nb::handle sign_shift) {
            const char* fn = "Plan.bconv_float";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const std::int64_t o = conv.out_channels();
            need_value(p, src, h * w * onebit::words_for(conv.in_channels()), true, fn, "src");
            const auto shape = conv.output_shape(h, w);
            const std::int64_t pixels = shape[0] * shape[1];
            need_value(p, dst, pixels * o, false, fn, "dst");
            std::vector<int> reads{src}, writes{dst};
            if (residual >= 0) {
              need_value(p, residual, pixels * o, false, fn, "residual");
              reads.push_back(residual);
            }
            if (bits_dst >= 0) {
              need_value(p, bits_dst, pixels * onebit::words_for(o), true, fn, "bits_dst");
              writes.push_back(bits_dst);
            } else if (!sign_shift.is_none()) {
              throw std::invalid_argument("Plan.bconv_float: sign_shift needs bits_dst");
            }
            if (post_scale.is_none() != post_bias.is_none()) throw std::invalid_argument("Plan.bconv_float: post_scale and post_bias together");
            // scale, bias, post_scale, post_bias, prelu shift_in, slope, shift_out, sign_shift
            auto v = std::make_shared<std::array<std::vector<float>, 8>>();
            (*v)[0] = copy_vector(scale, o, fn, "scale");
            (*v)[1] = copy_vector(bias, o, fn, "bias");
            if ((*v)[0].empty() || (*v)[1].empty()) throw std::invalid_argument("Plan.bconv_float: scale and bias are required");
            (*v)[2] = copy_vector(post_scale, o, fn, "post_scale");
            (*v)[3] = copy_vector(post_bias, o, fn, "post_bias");
            bool relu_after = false;
            if (nb::isinstance<nb::str>(prelu)) {
              if (nb::cast<std::string>(prelu) != "relu") throw std::invalid_argument("Plan.bconv_float: prelu must be a triple or 'relu'");
              relu_after = true;
            } else if (!prelu.is_none()) {
              if (!(nb::isinstance<nb::tuple>(prelu) || nb::isinstance<nb::list>(prelu)) || nb::len(prelu) != 3) {
                throw std::invalid_argument("Plan.bconv_float: prelu must be (shift_in, slope, shift_out) or 'relu'");
              }
              (*v)[4] = copy_vector(prelu[0], o, fn, "prelu shift_in");
              (*v)[5] = copy_vector(prelu[1], o, fn, "prelu slope");
              (*v)[6] = copy_vector(prelu[2], o, fn, "prelu shift_out");
            }
            (*v)[7] = copy_vector(sign_shift, o, fn, "sign_shift");
            const int a = act_code(act, fn);
            const onebit::BinaryConv2d* cp = &conv;
            p.step("conv2d", reads, writes, [=](void* const* s, std::int64_t n, int threads) {
              onebit::FloatStage st{(*v)[0].data(), (*v)[1].data(), a, data_or_null((*v)[2]), data_or_null((*v)[3])};
              st.residual = residual >= 0 ? at<const float>(s, residual) : nullptr;
              st.prelu_shift_in = data_or_null((*v)[4]);
              st.prelu_slope = data_or_null((*v)[5]);
              st.prelu_shift_out = data_or_null((*v)[6]);
              st.relu_after = relu_after;
              st.signs = bits_dst >= 0 ? at<std::uint64_t>(s, bits_dst) : nullptr;
              st.sign_shift = data_or_null((*v)[7]);
              cp->run_float(at<const std::uint64_t>(s, src), n, h, w, st, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("conv"), nb::arg("h"), nb::arg("w"), nb::arg("scale"), nb::arg("bias"),
          nb::arg("act"), nb::arg("post_scale").none(), nb::arg("post_bias").none(), nb::arg("residual"),
          nb::arg("prelu").none(), nb::arg("bits_dst"), nb::arg("sign_shift").none(), nb::keep_alive<1, 4>())
      .def(
          "bconv_pooled",
          [](Plan& p, int src, int dst, const onebit::BinaryConv2d& conv, std::int64_t h, std::int64_t w,
                nb::handle pool, nb::handle scale, nb::handle bias, const std::string& act, nb::handle post_scale,
                nb::handle post_bias, bool bits) {
            // A binary conv whose output is max-pooled before its float stage: the int32 result as
            // float32, fpool2d, then the numpy stage of ops._output_stage (Plan.dense_stage's).
            const char* fn = "Plan.bconv_pooled";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const std::int64_t o = conv.out_channels();
            need_value(p, src, h * w * onebit::words_for(conv.in_channels()), true, fn, "src");
            const onebit::FconvPool pl = pool_tuple(pool, fn);
            if (!pl.on) throw std::invalid_argument("Plan.bconv_pooled: needs a pool");
            const auto shape = conv.output_shape(h, w);
            const auto pooled = onebit::fpool2d_output_shape(shape[0], shape[1], pl.kernel, pl.stride, pl.padding,
                                                             pl.padding_end);
            need_value(p, dst, pooled[0] * pooled[1] * (bits ? onebit::words_for(o) : o), bits, fn, "dst");
            DenseStage st;
            st.scale = copy_vector(scale, o, fn, "scale");
            st.bias = copy_vector(bias, o, fn, "bias");
            st.post_scale = copy_vector(post_scale, o, fn, "post_scale");
            st.post_bias = copy_vector(post_bias, o, fn, "post_bias");
            if (st.post_scale.empty() != st.post_bias.empty()) throw std::invalid_argument("Plan.bconv_pooled: post_scale and post_bias together");
            st.act = act_code(act, fn);
            st.bits = bits;
            const onebit::BinaryConv2d* cp = &conv;
            p.step("conv2d", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              const std::int64_t conv_size = n * shape[0] * shape[1] * o, pool_size = n * pooled[0] * pooled[1] * o;
              std::vector<std::int32_t> y(static_cast<std::size_t>(conv_size));
              std::vector<float> yf(static_cast<std::size_t>(conv_size)), z(static_cast<std::size_t>(pool_size));
              cp->run(at<const std::uint64_t>(s, src), n, h, w, y.data(), threads, isa);
              for (std::int64_t i = 0; i < conv_size; ++i) yf[static_cast<std::size_t>(i)] = static_cast<float>(y[static_cast<std::size_t>(i)]);
              onebit::fpool2d(yf.data(), n, shape[0], shape[1], o, pl.kernel, pl.stride, pl.padding, false, z.data(),
                              threads, pl.padding_end, isa);
              st(z.data(), n * pooled[0] * pooled[1], o, s[dst], threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("conv"), nb::arg("h"), nb::arg("w"), nb::arg("pool"),
          nb::arg("scale").none(), nb::arg("bias").none(), nb::arg("act"), nb::arg("post_scale").none(),
          nb::arg("post_bias").none(), nb::arg("bits"), nb::keep_alive<1, 4>())
      .def(
          "embedding",
          [](Plan& p, int src, int dst, const AnyArray& table, bool bits) {
            // Ids are checked before the plan runs (onebit/runtime/embedding.py: a bad id is the
            // caller's InputError); the step gathers rows.
            const char* fn = "Plan.embedding";
            if (table.ndim() != 2 || table.shape(0) < 1 || table.shape(1) < 1) {
              throw std::invalid_argument("Plan.embedding: table must be 2-D (V, row)");
            }
            const void* data = bits ? static_cast<const void*>(checked<std::uint64_t>(table, 2, fn, "table"))
                                    : static_cast<const void*>(checked<float>(table, 2, fn, "table"));
            const auto row = static_cast<std::int64_t>(table.shape(1));
            const std::int64_t length = p.per_sample(src);
            need_value(p, src, length, false, fn, "src");
            need_value(p, dst, length * row, bits, fn, "dst");
            const std::int64_t row_bytes = row * (bits ? 8 : 4);
            p.step("embedding", {src}, {dst}, [=](void* const* s, std::int64_t n, int) {
              onebit::embedding_gather(at<const float>(s, src), n * length, data, row_bytes, s[dst]);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("table"), nb::arg("bits"), nb::keep_alive<1, 4>())
      .def(
          "bmaxpool",
          [](Plan& p, int src, int dst, std::int64_t h, std::int64_t w, std::int64_t c, nb::handle pool,
                const AnyArray& and_mask) {
            const char* fn = "Plan.bmaxpool";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const onebit::FconvPool pl = pool_tuple(pool, fn);
            if (!pl.on) throw std::invalid_argument("Plan.bmaxpool: needs a pool");
            const std::int64_t words = onebit::words_for(c);
            const std::uint64_t* md = checked<std::uint64_t>(and_mask, 1, fn, "and_mask");
            if (static_cast<std::int64_t>(and_mask.shape(0)) != words || onebit::first_row_with_tail_bits(md, 1, words, c) >= 0) {
              throw std::invalid_argument("Plan.bmaxpool: and_mask must be words_for(c) words, tail bits 0");
            }
            std::vector<std::uint64_t> mask(md, md + words);
            const auto shape = onebit::bmaxpool2d_output_shape(h, w, pl.kernel, pl.stride, pl.padding, pl.padding_end);
            need_value(p, src, h * w * words, true, fn, "src");
            need_value(p, dst, shape[0] * shape[1] * words, true, fn, "dst");
            p.step("maxpool2d", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::bmaxpool2d(at<const std::uint64_t>(s, src), n, h, w, c, pl.kernel, pl.stride, pl.padding,
                                 mask.data(), at<std::uint64_t>(s, dst), threads, isa, pl.padding_end);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("h"), nb::arg("w"), nb::arg("c"), nb::arg("pool"), nb::arg("and_mask"))
      .def(
          "fpool",
          [](Plan& p, int src, int dst, std::int64_t h, std::int64_t w, std::int64_t c, nb::handle pool, bool mean) {
            const char* fn = "Plan.fpool";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            const onebit::FconvPool pl = pool_tuple(pool, fn);
            if (!pl.on) throw std::invalid_argument("Plan.fpool: needs a pool");
            const auto shape = onebit::fpool2d_output_shape(h, w, pl.kernel, pl.stride, pl.padding, pl.padding_end);
            need_value(p, src, h * w * c, false, fn, "src");
            need_value(p, dst, shape[0] * shape[1] * c, false, fn, "dst");
            p.step(mean ? "avgpool2d" : "maxpool2d", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::fpool2d(at<const float>(s, src), n, h, w, c, pl.kernel, pl.stride, pl.padding, mean,
                              at<float>(s, dst), threads, pl.padding_end, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("h"), nb::arg("w"), nb::arg("c"), nb::arg("pool"), nb::arg("mean"))
      .def(
          "affine",
          [](Plan& p, int src, int dst, std::int64_t c, nb::handle scale, nb::handle bias) {
            const char* fn = "Plan.affine";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (c < 1 || p.per_sample(src) % c) throw std::invalid_argument("Plan.affine: c must divide the source's size");
            need_value(p, dst, p.per_sample(src), false, fn, "dst");
            need_value(p, src, p.per_sample(src), false, fn, "src");
            std::vector<float> sc = copy_vector(scale, c, fn, "scale"), bi = copy_vector(bias, c, fn, "bias");
            if (sc.empty() || bi.empty()) throw std::invalid_argument("Plan.affine: scale and bias are required");
            const std::int64_t rows = p.per_sample(src) / c;
            p.step("affine", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::channel_affine(at<const float>(s, src), n * rows, c, sc.data(), bi.data(), at<float>(s, dst),
                                     threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("scale"), nb::arg("bias"))
      .def(
          "prelu",
          [](Plan& p, int src, int dst, std::int64_t c, nb::handle shift_in, nb::handle slope,
                nb::handle shift_out) {
            const char* fn = "Plan.prelu";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (c < 1 || p.per_sample(src) % c) throw std::invalid_argument("Plan.prelu: c must divide the source's size");
            need_value(p, src, p.per_sample(src), false, fn, "src");
            need_value(p, dst, p.per_sample(src), false, fn, "dst");
            std::vector<float> si = copy_vector(shift_in, c, fn, "shift_in"), sl = copy_vector(slope, c, fn, "slope"),
                               so = copy_vector(shift_out, c, fn, "shift_out");
            if (si.empty() || sl.empty() || so.empty()) throw std::invalid_argument("Plan.prelu: shift_in, slope and shift_out are required");
            const std::int64_t rows = p.per_sample(src) / c;
            p.step("act", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::channel_prelu(at<const float>(s, src), n * rows, c, si.data(), sl.data(), so.data(),
                                    at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("shift_in"), nb::arg("slope"), nb::arg("shift_out"))
      .def(
          "clip",
          [](Plan& p, int src, int dst, float low, float high, bool relu) {
            const char* fn = "Plan.clip";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, p.per_sample(src), false, fn, "src");
            need_value(p, dst, p.per_sample(src), false, fn, "dst");
            const std::int64_t size = p.per_sample(src);
            p.step("act", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              if (relu) {
                onebit::relu_f32(at<const float>(s, src), n * size, at<float>(s, dst), threads, isa);
              } else {
                onebit::clip_f32(at<const float>(s, src), n * size, low, high, at<float>(s, dst), threads, isa);
              }
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("low"), nb::arg("high"), nb::arg("relu"),
          "relu=True: numpy.maximum(x, 0); else numpy.clip(x, low, high).")
      .def(
          "sigmoid",
          [](Plan& p, int src, int dst) {
            const char* fn = "Plan.sigmoid";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, src, p.per_sample(src), false, fn, "src");
            need_value(p, dst, p.per_sample(src), false, fn, "dst");
            const std::int64_t size = p.per_sample(src);
            p.step("sigmoid", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::sigmoid_f32(at<const float>(s, src), n * size, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), "sigmoid_f32 (the kernel of _core.sigmoid).")
      .def(
          "add",
          [](Plan& p, int a, int b, int dst) {
            const char* fn = "Plan.add";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            need_value(p, a, p.per_sample(a), false, fn, "a");
            need_value(p, b, p.per_sample(a), false, fn, "b");
            need_value(p, dst, p.per_sample(a), false, fn, "dst");
            const std::int64_t size = p.per_sample(a);
            p.step("add", {a, b}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::add_f32(at<const float>(s, a), at<const float>(s, b), n * size, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("a"), nb::arg("b"), nb::arg("dst"))
      .def(
          "concat",
          [](Plan& p, const std::vector<int>& srcs, const std::vector<std::int64_t>& channels, int dst,
             nb::handle scale, nb::handle bias) {
            const char* fn = "Plan.concat";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (srcs.empty() || srcs.size() != channels.size() || channels[0] < 1 || p.per_sample(srcs[0]) % channels[0]) {
              throw std::invalid_argument("Plan.concat: one channel count (>= 1) per part, at least one part");
            }
            const std::int64_t rows = p.per_sample(srcs[0]) / channels[0];
            std::int64_t c = 0;
            for (std::size_t i = 0; i < srcs.size(); ++i) {
              if (channels[i] < 1) throw std::invalid_argument("Plan.concat: channel counts must be >= 1");
              need_value(p, srcs[i], rows * channels[i], false, fn, "part");
              c += channels[i];
            }
            need_value(p, dst, rows * c, false, fn, "dst");
            if (scale.is_none() != bias.is_none()) throw std::invalid_argument("Plan.concat: scale and bias together");
            std::vector<float> sc = copy_vector(scale, c, fn, "scale"), bi = copy_vector(bias, c, fn, "bias");
            p.step(sc.empty() ? "concat" : "concat+affine", srcs, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              std::vector<const float*> parts;
              for (int id : srcs) parts.push_back(at<const float>(s, id));
              onebit::channel_affine_parts(parts.data(), channels.data(), static_cast<int>(parts.size()), n * rows,
                                           data_or_null(sc), data_or_null(bi), at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("srcs"), nb::arg("channels"), nb::arg("dst"), nb::arg("scale").none() = nb::none(),
          nb::arg("bias").none() = nb::none(),
          "numpy.concatenate of the parts along channels; with scale and bias, then the affine (one pass).")
      .def(
          "transition",
          [](Plan& p, const std::vector<int>& srcs, const std::vector<std::int64_t>& channels, int dst, std::int64_t h,
             std::int64_t w, nb::handle scale, nb::handle bias, nb::handle pool, bool relu) {
            // maxpool(affine(concat(parts))) [then relu], each input row made as it is pooled.
            const char* fn = "Plan.transition";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (srcs.empty() || srcs.size() != channels.size()) {
              throw std::invalid_argument("Plan.transition: one channel count per part, at least one part");
            }
            std::int64_t c = 0;
            for (std::size_t i = 0; i < srcs.size(); ++i) {
              if (channels[i] < 1) throw std::invalid_argument("Plan.transition: channel counts must be >= 1");
              need_value(p, srcs[i], h * w * channels[i], false, fn, "part");
              c += channels[i];
            }
            const onebit::FconvPool pl = pool_tuple(pool, fn);
            if (!pl.on) throw std::invalid_argument("Plan.transition: needs a pool");
            const auto shape = onebit::fpool2d_output_shape(h, w, pl.kernel, pl.stride, pl.padding, pl.padding_end);
            need_value(p, dst, shape[0] * shape[1] * c, false, fn, "dst");
            auto v = std::make_shared<std::array<std::vector<float>, 2>>(
                std::array<std::vector<float>, 2>{copy_vector(scale, c, fn, "scale"), copy_vector(bias, c, fn, "bias")});
            if ((*v)[0].empty() || (*v)[1].empty()) throw std::invalid_argument("Plan.transition: scale and bias are required");
            p.step("concat+affine+maxpool2d", srcs, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              AffinePartsRows rows{{}, channels, h, w, (*v)[0].data(), (*v)[1].data(), isa};
              for (int id : srcs) rows.parts.push_back(at<const float>(s, id));
              onebit::fmaxpool2d_rows(&AffinePartsRows::row, &rows, n, h, w, c, pl.kernel, pl.stride, pl.padding, relu,
                                      at<float>(s, dst), threads, pl.padding_end, isa);
            });
          },
          nb::arg("srcs"), nb::arg("channels"), nb::arg("dst"), nb::arg("h"), nb::arg("w"), nb::arg("scale"),
          nb::arg("bias"), nb::arg("pool"), nb::arg("relu"))
      .def(
          "channel_mul",
          [](Plan& p, int x, int g, int dst, std::int64_t c) {
            const char* fn = "Plan.channel_mul";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (c < 1 || p.per_sample(x) % c) throw std::invalid_argument("Plan.channel_mul: c must divide x's size");
            need_value(p, x, p.per_sample(x), false, fn, "x");
            need_value(p, g, c, false, fn, "g");
            need_value(p, dst, p.per_sample(x), false, fn, "dst");
            const std::int64_t hw = p.per_sample(x) / c;
            p.step("channel_mul", {x, g}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::channel_gate(at<const float>(s, x), at<const float>(s, g), n, hw, c, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("x"), nb::arg("g"), nb::arg("dst"), nb::arg("c"));
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "onebit C++ kernels (binary GEMM, bit packing) with run-time ISA dispatch";

  // ---- dispatch ----
  m.def("available_isas", [] { return isa_names(onebit::available_isas()); },
        "ISAs this CPU can run, slowest first: a subset of ['scalar', 'avx2', 'avx512'].");
  m.def("selected_isa", [] { return std::string(onebit::isa_name(onebit::selected_isa())); },
        "The ISA used by default: ONEBIT_ISA if set (ValueError if unknown or unsupported), else "
        "the best available.");
  m.def("isa_supported", [](const std::string& name) { return onebit::isa_supported(onebit::parse_isa(name)); },
        nb::arg("name"));
  m.def("cpu_features", &onebit::cpu_features, "Detected CPU/OS features relevant to dispatch.");
  m.def("default_num_threads", &onebit::default_num_threads,
        "Physical cores this process may run on (the default thread count).");

  // ---- packed weights ----
  nb::class_<onebit::PackedWeights>(m, "PackedWeights",
                                    "Binary weights (N, ceil(K/64)) uint64 repacked once into the "
                                    "micro-kernel layout: tiles of 32 rows interleaved word by word.")
      .def(
          "__init__",
          [](onebit::PackedWeights* self, const AnyArray& w, std::int64_t k) {
            const std::uint64_t* data = checked<std::uint64_t>(w, 2, "PackedWeights", "w");
            const auto n = static_cast<std::int64_t>(w.shape(0));
            const auto words = static_cast<std::int64_t>(w.shape(1));
            if (k < 1) throw std::invalid_argument("PackedWeights: k must be >= 1, got " + std::to_string(k));
            if (words != onebit::words_for(k)) {
              throw std::invalid_argument("PackedWeights: k=" + std::to_string(k) + " needs " +
                                          std::to_string(onebit::words_for(k)) +
                                          " words per row, got w of shape " + shape_str(w));
            }
            const std::int64_t bad = onebit::first_row_with_tail_bits(data, n, words, k);
            if (bad >= 0) {
              throw std::invalid_argument("PackedWeights: row " + std::to_string(bad) +
                                          " of w has bits set beyond k=" + std::to_string(k) +
                                          " (padding bits must be 0)");
            }
            nb::gil_scoped_release release;
            new (self) onebit::PackedWeights(data, n, words, k);
          },
          nb::arg("w"), nb::arg("k"))
      .def_prop_ro("n", &onebit::PackedWeights::n, "Output channels (weight rows).")
      .def_prop_ro("k", &onebit::PackedWeights::k, "Input bits per row.")
      .def_prop_ro("words", &onebit::PackedWeights::words, "uint64 words per row, ceil(k / 64).")
      .def_prop_ro("tiles", &onebit::PackedWeights::tiles, "Tiles of 32 rows (N padded).")
      .def_prop_ro_static("nr", [](nb::handle) { return onebit::kBgemmNR; }, "Rows per tile.")
      .def_prop_ro("nbytes", &onebit::PackedWeights::nbytes, "Bytes of the packed buffer.")
      .def(
          "unpack",
          [](const onebit::PackedWeights& self) {
            auto out = new_matrix<std::uint64_t>(self.n(), self.words());
            {
              nb::gil_scoped_release release;
              self.unpack(out.data());
            }
            return out;
          },
          "The original (n, words) uint64 rows.");

  // ---- bgemm ----
  m.def(
      "bgemm",
      [](const AnyArray& a, const onebit::PackedWeights& w, int num_threads, const std::string& isa) {
        const std::uint64_t* data = checked_activations(a, w, "bgemm");
        const int threads = checked_threads(num_threads, "bgemm");
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto rows = static_cast<std::int64_t>(a.shape(0));
        auto out = new_matrix<std::int32_t>(rows, w.n());
        {
          nb::gil_scoped_release release;
          onebit::bgemm(data, rows, w, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("a"), nb::arg("weights"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "C[m, n] = K - 2 * popcount(a[m] ^ W[n]) as int32 (M, N). num_threads 0 = default; "
      "isa '' = selected.");

  m.def(
      "bgemm_threshold",
      [](const AnyArray& a, const onebit::PackedWeights& w, const AnyArray& thresholds, const AnyArray& signs,
         int num_threads, const std::string& isa) {
        const std::uint64_t* data = checked_activations(a, w, "bgemm_threshold");
        const std::int32_t* t = checked<std::int32_t>(thresholds, 1, "bgemm_threshold", "thresholds");
        const std::int8_t* s = checked<std::int8_t>(signs, 1, "bgemm_threshold", "signs");
        if (static_cast<std::int64_t>(thresholds.shape(0)) != w.n() ||
            static_cast<std::int64_t>(signs.shape(0)) != w.n()) {
          throw std::invalid_argument("bgemm_threshold: thresholds and signs need n=" + std::to_string(w.n()) +
                                      " entries, got " + shape_str(thresholds) + " and " + shape_str(signs));
        }
        for (std::int64_t i = 0; i < w.n(); ++i) {
          if (s[i] != 1 && s[i] != -1) {
            throw std::invalid_argument("bgemm_threshold: signs must be +1 or -1, got " + std::to_string(s[i]) +
                                        " at index " + std::to_string(i));
          }
        }
        const int threads = checked_threads(num_threads, "bgemm_threshold");
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto rows = static_cast<std::int64_t>(a.shape(0));
        auto out = new_matrix<std::uint64_t>(rows, onebit::words_for(w.n()));
        {
          nb::gil_scoped_release release;
          onebit::bgemm_threshold(data, rows, w, t, s, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("a"), nb::arg("weights"), nb::arg("thresholds"), nb::arg("signs"), nb::arg("num_threads") = 0,
      nb::arg("isa") = "",
      "Packed bits (M, ceil(N/64)) uint64: value +1 (bit 0) iff signs[n] * (C[m, n] - thresholds[n]) >= 0.");

  m.def(
      "bgemm_float",
      [](const AnyArray& a, const onebit::PackedWeights& w, const AnyArray& scale, const AnyArray& bias,
         const std::string& act, nb::handle post_scale, nb::handle post_bias, int num_threads,
         const std::string& isa) {
        const char* fn = "bgemm_float";
        const std::uint64_t* data = checked_activations(a, w, fn);
        const StageArgs st(scale, bias, act, post_scale, post_bias, w.n(), fn);
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto rows = static_cast<std::int64_t>(a.shape(0));
        auto out = new_matrix<float>(rows, w.n());
        {
          nb::gil_scoped_release release;
          onebit::bgemm_float(data, rows, w, st.stage, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("a"), nb::arg("weights"), nb::arg("scale"), nb::arg("bias"), nb::arg("act") = "none",
      nb::arg("post_scale").none() = nb::none(), nb::arg("post_bias").none() = nb::none(), nb::arg("num_threads") = 0,
      nb::arg("isa") = "",
      "float32 (M, N): act(C * scale + bias) * post_scale + post_bias per column (post_* optional; act none, "
      "relu or hardtanh), C the int32 product of bgemm(), each step rounded to float32.");

  m.def(
      "bgemm_reference",
      [](const AnyArray& a, const AnyArray& w, std::int64_t k) {
        const std::uint64_t* ad = checked<std::uint64_t>(a, 2, "bgemm_reference", "a");
        const std::uint64_t* wd = checked<std::uint64_t>(w, 2, "bgemm_reference", "w");
        if (k < 1 || static_cast<std::int64_t>(a.shape(1)) != onebit::words_for(k) ||
            w.shape(1) != a.shape(1)) {
          throw std::invalid_argument("bgemm_reference: a " + shape_str(a) + " and w " + shape_str(w) +
                                      " must both have ceil(k/64) words for k=" + std::to_string(k));
        }
        const auto rows = static_cast<std::int64_t>(a.shape(0)), n = static_cast<std::int64_t>(w.shape(0));
        for (const auto& [what, data, count] : {std::make_tuple("a", ad, rows), std::make_tuple("w", wd, n)}) {
          const std::int64_t bad = onebit::first_row_with_tail_bits(data, count, onebit::words_for(k), k);
          if (bad >= 0) {
            throw std::invalid_argument(std::string("bgemm_reference: row ") + std::to_string(bad) + " of " + what +
                                        " has bits set beyond k=" + std::to_string(k) + " (padding bits must be 0)");
          }
        }
        auto out = new_matrix<std::int32_t>(rows, n);
        {
          nb::gil_scoped_release release;
          onebit::bgemm_reference(ad, rows, wd, n, onebit::words_for(k), k, out.data());
        }
        return out;
      },
      nb::arg("a"), nb::arg("w"), nb::arg("k"),
      "The specification: plain-loop bgemm on unpacked (N, words) weights, one thread.");

  m.def(
      "peak_binary_macs",
      [](const std::string& isa, std::int64_t iters) {
        const onebit::Isa which = onebit::resolve_isa(isa);
        const onebit::BgemmKernels& k = onebit::bgemm_kernels(which);
        if (k.peak == nullptr) {
          throw std::invalid_argument(std::string("peak_binary_macs: no peak loop for ") + onebit::isa_name(which));
        }
        if (iters < 1) throw std::invalid_argument("peak_binary_macs: iters must be >= 1");
        const auto [macs, seconds] = timed_peak(k.peak, iters);
        return nb::make_tuple(macs, seconds, std::string(k.peak_mix));
      },
      nb::arg("isa"), nb::arg("iters"),
      "Run the ISA's register-resident peak loop (the micro-kernel's steady-state instruction "
      "mix with loads taken out) for iters iterations on this thread; returns (binary MACs, "
      "seconds, instruction mix). Peak binary MACs/s = MACs / seconds.");

  m.def(
      "peak_float_macs",
      [](const std::string& isa, std::int64_t iters) {
        const onebit::Isa which = onebit::resolve_isa(isa);
        const onebit::FconvKernels& k = onebit::fconv_kernels(which);
        if (k.peak == nullptr) {
          throw std::invalid_argument(std::string("peak_float_macs: no FMA peak loop for ") + onebit::isa_name(which) +
                                      " (valid: avx2, avx512 on a CPU with FMA)");
        }
        if (iters < 1) throw std::invalid_argument("peak_float_macs: iters must be >= 1");
        const auto [macs, seconds] = timed_peak(k.peak, iters);
        return nb::make_tuple(macs, seconds);
      },
      nb::arg("isa"), nb::arg("iters"),
      "Run the ISA's register-resident FMA loop (16 independent chains) for iters iterations "
      "on this thread; returns (float MACs, seconds). Peak float MACs/s = MACs / seconds.");

  m.def("bgemm_micro_rows", [](const std::string& isa) { return onebit::bgemm_kernels(onebit::resolve_isa(isa)).mr; },
        nb::arg("isa") = "", "Activation rows per micro-kernel call (MR) of an ISA.");
  m.attr("BGEMM_NR") = onebit::kBgemmNR;
  m.attr("BGEMM_KC_WORDS") = onebit::kBgemmKC;

  // ---- float inputs x binary weights ----
  nb::class_<onebit::BinaryWeightsF32>(
      m, "BinaryWeightsF32",
      "Binary weights (N, ceil(K/64)) uint64 (bit 1 = -1, tail bits 0) repacked once for the "
      "float-input kernel: run(x) = x @ s.T for float32 x (M, K) and the +-1 matrix s (N, K), "
      "without a dense float copy of s. Error <= 2**-17 * sum_k |x[m, k]| per output; avx2 and "
      "avx512 give the same bits for any thread count and batch, scalar (double sums) differs "
      "in the last bits.")
      .def(
          "__init__",
          [](onebit::BinaryWeightsF32* self, const AnyArray& w, std::int64_t k) {
            const char* fn = "BinaryWeightsF32";
            const std::uint64_t* data = checked<std::uint64_t>(w, 2, fn, "w");
            const auto n = static_cast<std::int64_t>(w.shape(0));
            const auto words = static_cast<std::int64_t>(w.shape(1));
            if (k < 1) throw std::invalid_argument("BinaryWeightsF32: k must be >= 1, got " + std::to_string(k));
            if (words != onebit::words_for(k)) {
              throw std::invalid_argument("BinaryWeightsF32: k=" + std::to_string(k) + " needs " +
                                          std::to_string(onebit::words_for(k)) + " words per row, got w of shape " +
                                          shape_str(w));
            }
            const std::int64_t bad = onebit::first_row_with_tail_bits(data, n, words, k);
            if (bad >= 0) {
              throw std::invalid_argument("BinaryWeightsF32: row " + std::to_string(bad) +
                                          " of w has bits set beyond k=" + std::to_string(k) +
                                          " (padding bits must be 0)");
            }
            nb::gil_scoped_release release;
            new (self) onebit::BinaryWeightsF32(data, n, k);
          },
          nb::arg("w"), nb::arg("k"))
      .def(
          "run",
          [](const onebit::BinaryWeightsF32& self, const AnyArray& x, int num_threads, const std::string& isa) {
            const char* fn = "BinaryWeightsF32.run";
            const float* data = checked<float>(x, 2, fn, "x");
            if (static_cast<std::int64_t>(x.shape(1)) != self.k()) {
              throw std::invalid_argument(std::string(fn) + ": x has " + std::to_string(x.shape(1)) +
                                          " columns but the weights have k=" + std::to_string(self.k()) +
                                          " (x must be (M, k) float32)");
            }
            const int threads = checked_threads(num_threads, fn);
            const onebit::Isa which = onebit::resolve_isa(isa);
            const auto rows = static_cast<std::int64_t>(x.shape(0));
            auto out = new_matrix<float>(rows, self.n());
            {
              nb::gil_scoped_release release;
              onebit::fgemm_bw(data, rows, self, out.data(), threads, which);
            }
            return out;
          },
          nb::arg("x"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          "float32 (M, N): y[m, n] = sum_k x[m, k] * s[n, k] for float32 x (M, k). num_threads 0 = "
          "default; isa '' = selected.")
      .def(
          "unpack",
          [](const onebit::BinaryWeightsF32& self) {
            auto out = new_matrix<std::uint64_t>(self.n(), onebit::words_for(self.k()));
            {
              nb::gil_scoped_release release;
              self.unpack(out.data());
            }
            return out;
          },
          "The original (n, ceil(k/64)) uint64 rows.")
      .def_prop_ro("n", &onebit::BinaryWeightsF32::n, "Output columns (weight rows).")
      .def_prop_ro("k", &onebit::BinaryWeightsF32::k, "Inputs per row.")
      .def_prop_ro("nbytes", &onebit::BinaryWeightsF32::nbytes, "Bytes of the repacked buffer.");

  m.def(
      "fgemm_bw_reference",
      [](const AnyArray& x, const AnyArray& w, std::int64_t k) {
        const char* fn = "fgemm_bw_reference";
        const float* xd = checked<float>(x, 2, fn, "x");
        const std::uint64_t* wd = checked<std::uint64_t>(w, 2, fn, "w");
        if (k < 1 || static_cast<std::int64_t>(x.shape(1)) != k ||
            static_cast<std::int64_t>(w.shape(1)) != onebit::words_for(k)) {
          throw std::invalid_argument("fgemm_bw_reference: x " + shape_str(x) + " must be (M, k) and w " +
                                      shape_str(w) + " (N, ceil(k/64)) for k=" + std::to_string(k));
        }
        const auto rows = static_cast<std::int64_t>(x.shape(0)), n = static_cast<std::int64_t>(w.shape(0));
        const std::int64_t bad = onebit::first_row_with_tail_bits(wd, n, onebit::words_for(k), k);
        if (bad >= 0) {
          throw std::invalid_argument("fgemm_bw_reference: row " + std::to_string(bad) +
                                      " of w has bits set beyond k=" + std::to_string(k) + " (padding bits must be 0)");
        }
        auto out = new_matrix<float>(rows, n);
        {
          nb::gil_scoped_release release;
          onebit::fgemm_bw_reference(xd, rows, wd, n, k, out.data());
        }
        return out;
      },
      nb::arg("x"), nb::arg("w"), nb::arg("k"),
      "The specification: x @ s.T on unpacked (N, ceil(k/64)) weights, double accumulation, one thread.");
  m.attr("FGEMM_BW_PANEL_ROWS") = onebit::kFgemmBwPanelRows;
  m.attr("FGEMM_BW_KC") = onebit::kFgemmBwKC;

  // ---- bit packing ----
  m.def(
      "pack_rows",
      [](const AnyArray& x, int num_threads, const std::string& isa) {
        const float* data = checked<float>(x, 2, "pack_rows", "x");
        const int threads = checked_threads(num_threads, "pack_rows");
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto rows = static_cast<std::int64_t>(x.shape(0));
        const auto cols = static_cast<std::int64_t>(x.shape(1));
        auto out = new_matrix<std::uint64_t>(rows, onebit::words_for(cols));
        {
          nb::gil_scoped_release release;
          onebit::pack_rows_f32(data, rows, cols, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "Pack a float32 (rows, cols) matrix into (rows, ceil(cols/64)) uint64 words; bit 1 means "
      "the value is < 0 (so +-0.0 and NaN pack as +1).");

  m.def(
      "all_finite",
      [](const AnyArray& x, const std::string& isa) {
        const float* data = checked<float>(x, x.ndim(), "all_finite", "x");
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto n = static_cast<std::int64_t>(x.size());
        nb::gil_scoped_release release;
        return onebit::all_finite(data, n, which);
      },
      nb::arg("x"), nb::arg("isa") = "",
      "True iff the float32 array (any shape, C-contiguous) holds no NaN or infinity.");

  m.def(
      "channel_affine",
      [](const AnyArray& x, const AnyArray& scale, const AnyArray& bias, int num_threads, const std::string& isa) {
        const char* fn = "channel_affine";
        const ChannelRows r(x, fn);
        const float* s = r.vector(scale, fn, "scale");
        const float* b = r.vector(bias, fn, "bias");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        auto out = new_array<float>(r.shape);
        {
          nb::gil_scoped_release release;
          onebit::channel_affine(r.data, r.rows, r.c, s, b, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("scale"), nb::arg("bias"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "float32 x * scale + bias per channel (the last axis), each step rounded as numpy does.");

  m.def(
      "channel_prelu",
      [](const AnyArray& x, const AnyArray& shift_in, const AnyArray& slope, const AnyArray& shift_out,
         int num_threads, const std::string& isa) {
        const char* fn = "channel_prelu";
        const ChannelRows r(x, fn);
        const float* si = r.vector(shift_in, fn, "shift_in");
        const float* sl = r.vector(slope, fn, "slope");
        const float* so = r.vector(shift_out, fn, "shift_out");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        auto out = new_array<float>(r.shape);
        {
          nb::gil_scoped_release release;
          onebit::channel_prelu(r.data, r.rows, r.c, si, sl, so, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("shift_in"), nb::arg("slope"), nb::arg("shift_out"), nb::arg("num_threads") = 0,
      nb::arg("isa") = "",
      "float32 RPReLU per channel (the last axis): z = x - shift_in; (max(z, 0) + min(z, 0) * slope) + "
      "shift_out, each step rounded as numpy does.");

  m.def(
      "add",
      [](const AnyArray& a, const AnyArray& b, int num_threads, const std::string& isa) {
        const char* fn = "add";
        const ChannelRows ra(a, fn), rb(b, fn);
        if (ra.shape != rb.shape) {
          throw std::invalid_argument(std::string(fn) + ": a and b must have one shape, got " + shape_str(a) +
                                      " and " + shape_str(b));
        }
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        auto out = new_array<float>(ra.shape);
        {
          nb::gil_scoped_release release;
          onebit::add_f32(ra.data, rb.data, static_cast<std::int64_t>(a.size()), out.data(), threads, which);
        }
        return out;
      },
      nb::arg("a"), nb::arg("b"), nb::arg("num_threads") = 0, nb::arg("isa") = "", "float32 a + b, threaded.");

  m.def(
      "pack_shifted",
      [](const AnyArray& x, const AnyArray& shift, int num_threads, const std::string& isa) {
        const char* fn = "pack_shifted";
        const ChannelRows r(x, fn);
        const float* s = r.vector(shift, fn, "shift");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        std::vector<std::size_t> shape = r.shape;
        shape.back() = static_cast<std::size_t>(onebit::words_for(r.c));
        auto out = new_array<std::uint64_t>(shape);
        {
          nb::gil_scoped_release release;
          onebit::pack_shifted(r.data, r.rows, r.c, s, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("shift"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "Packed uint64 (..., ceil(C/64)) of x - shift per channel (the last axis): bit 1 where the "
      "difference is < 0, as pack_rows.");

  m.def(
      "pack_shifted_parts",
      [](const std::vector<AnyArray>& parts, nb::handle shift, int num_threads, const std::string& isa,
         nb::handle scale, nb::handle bias) {
        const char* fn = "pack_shifted_parts";
        if (parts.empty()) throw std::invalid_argument(std::string(fn) + ": parts must not be empty");
        std::vector<const float*> data;
        std::vector<std::int64_t> channels;
        std::vector<std::size_t> shape;
        for (const AnyArray& p : parts) {
          const ChannelRows r(p, fn);
          std::vector<std::size_t> lead(r.shape.begin(), r.shape.end() - 1);
          if (data.empty()) {
            shape = lead;
          } else if (lead != shape) {
            throw std::invalid_argument(std::string(fn) + ": parts must agree in all but the last axis, got " +
                                        shape_str(parts[0]) + " and " + shape_str(p));
          }
          data.push_back(r.data);
          channels.push_back(r.c);
        }
        std::int64_t c = 0, rows = 1;
        for (std::int64_t ci : channels) c += ci;
        for (std::size_t d : shape) rows *= static_cast<std::int64_t>(d);
        AnyArray sa, sc, bi;
        auto optional = [&](nb::handle h, AnyArray& into, const char* name) -> const float* {
          if (h.is_none()) return nullptr;
          if (!nb::try_cast(h, into)) throw std::invalid_argument(std::string(fn) + ": " + name + " must be a numpy array");
          return StageArgs::vector(into, c, fn, name);
        };
        const float* s = optional(shift, sa, "shift");
        if (scale.is_none() != bias.is_none()) {
          throw std::invalid_argument(std::string(fn) + ": scale and bias must be given together");
        }
        const float* sc_data = optional(scale, sc, "scale");
        const float* bi_data = optional(bias, bi, "bias");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        shape.push_back(static_cast<std::size_t>(onebit::words_for(c)));
        auto out = new_array<std::uint64_t>(shape);
        {
          nb::gil_scoped_release release;
          onebit::pack_shifted_parts(data.data(), channels.data(), static_cast<int>(data.size()), rows, sc_data,
                                     bi_data, s, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("parts"), nb::arg("shift").none() = nb::none(), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      nb::arg("scale").none() = nb::none(), nb::arg("bias").none() = nb::none(),
      "Packed sign of z over the concatenation of the float32 parts along their last axis (the same "
      "leading shape), without forming it: z = x * scale + bias (if given), then z - shift (if given); "
      "bit 1 where z < 0.");

  m.def(
      "first_bad_id",
      [](const AnyArray& ids, std::int64_t vocab) {
        const float* data = checked<float>(ids, ids.ndim(), "first_bad_id", "ids");
        if (vocab < 1) throw std::invalid_argument("first_bad_id: vocab must be >= 1, got " + std::to_string(vocab));
        return onebit::first_bad_id(data, static_cast<std::int64_t>(ids.size()), vocab);
      },
      nb::arg("ids"), nb::arg("vocab"),
      "The flat index of the first id (float32) that is not an integer in [0, vocab), or -1.");

  m.def(
      "sigmoid",
      [](const AnyArray& x, int num_threads, const std::string& isa) {
        const char* fn = "sigmoid";
        const float* data = checked<float>(x, x.ndim(), fn, "x");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        std::vector<std::size_t> shape;
        for (std::size_t i = 0; i < x.ndim(); ++i) shape.push_back(static_cast<std::size_t>(x.shape(i)));
        auto out = new_array<float>(shape);
        {
          nb::gil_scoped_release release;
          onebit::sigmoid_f32(data, static_cast<std::int64_t>(x.size()), out.data(), threads, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "1 / (1 + exp(-x)) of float32 x, computed in double (std::exp) and rounded once to float32.");

  m.def(
      "nchw_to_nhwc",
      [](const AnyArray& x, int num_threads) {
        const float* data = checked<float>(x, 4, "nchw_to_nhwc", "x");
        const int threads = checked_threads(num_threads, "nchw_to_nhwc");
        const auto n = static_cast<std::int64_t>(x.shape(0)), c = static_cast<std::int64_t>(x.shape(1));
        const auto h = static_cast<std::int64_t>(x.shape(2)), w = static_cast<std::int64_t>(x.shape(3));
        auto out = new_array4<float>(n, h, w, c);
        {
          nb::gil_scoped_release release;
          onebit::nchw_to_nhwc(data, n, c, h, w, out.data(), threads);
        }
        return out;
      },
      nb::arg("x"), nb::arg("num_threads") = 0,
      "float32 (N, C, H, W) -> (N, H, W, C), a copy.");

  m.def(
      "unpack_rows",
      [](const AnyArray& packed, std::int64_t cols, int num_threads, const std::string& isa) {
        const std::uint64_t* data = checked<std::uint64_t>(packed, 2, "unpack_rows", "packed");
        const auto rows = static_cast<std::int64_t>(packed.shape(0));
        if (cols < 0 || static_cast<std::int64_t>(packed.shape(1)) != onebit::words_for(cols)) {
          throw std::invalid_argument("unpack_rows: " + std::to_string(cols) + " cols need " +
                                      std::to_string(onebit::words_for(cols < 0 ? 0 : cols)) +
                                      " words per row, got shape " + shape_str(packed));
        }
        const int threads = checked_threads(num_threads, "unpack_rows");
        const onebit::Isa which = onebit::resolve_isa(isa);
        auto out = new_matrix<float>(rows, cols);
        {
          nb::gil_scoped_release release;
          onebit::unpack_rows_f32(data, rows, cols, out.data(), threads, which);
        }
        return out;
      },
      nb::arg("packed"), nb::arg("cols"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
      "Unpack (rows, ceil(cols/64)) uint64 words into a (rows, cols) float32 matrix of +-1.");

  // ---- binary convolution ----
  nb::class_<onebit::BinaryConv2d>(
      m, "BinaryConv2d",
      "Binary 2-D convolution on packed NHWC activations, built once from packed weights "
      "(O, KH, KW, ceil(Cg/64)) uint64, Cg = in_channels / groups, bit 1 = -1, tail bits 0. "
      "Computes the integer convolution of the +-1 tensors with the input padded by pad_value "
      "(-1, 0 or +1) by bit-level im2col + the bgemm micro-kernels. groups: 1, or Cg a multiple "
      "of 64 and out_channels divisible by groups.")
      .def(
          "__init__",
          [](onebit::BinaryConv2d* self, const AnyArray& weights, std::int64_t in_channels, std::int64_t groups,
             nb::handle stride, nb::handle padding, nb::handle dilation, int pad_value, nb::handle padding_end) {
            const char* fn = "BinaryConv2d";
            const auto pe = padding_end.is_none() ? std::array<std::int64_t, 2>{-1, -1}
                                                  : pair_arg(padding_end, fn, "padding_end");
            const std::uint64_t* data = checked<std::uint64_t>(weights, 4, fn, "weights");
            const auto s = pair_arg(stride, fn, "stride");
            const auto p = pair_arg(padding, fn, "padding");
            const auto d = pair_arg(dilation, fn, "dilation");
            const auto o = static_cast<std::int64_t>(weights.shape(0));
            const auto kh = static_cast<std::int64_t>(weights.shape(1));
            const auto kw = static_cast<std::int64_t>(weights.shape(2));
            const auto wg = static_cast<std::int64_t>(weights.shape(3));
            if (o < 1 || kh < 1 || kw < 1) {
              throw std::invalid_argument("BinaryConv2d: weights (O, KH, KW, words) need O, KH, KW >= 1, got " +
                                          shape_str(weights));
            }
            if (in_channels < 1) {
              throw std::invalid_argument("BinaryConv2d: in_channels must be >= 1, got " + std::to_string(in_channels));
            }
            if (groups < 1 || in_channels % groups != 0) {
              throw std::invalid_argument("BinaryConv2d: groups must be >= 1 and divide in_channels=" +
                                          std::to_string(in_channels) + ", got " + std::to_string(groups));
            }
            const std::int64_t cg = in_channels / groups;
            if (wg != onebit::words_for(cg)) {
              throw std::invalid_argument("BinaryConv2d: weights have " + std::to_string(wg) +
                                          " words per tap but in_channels / groups = " + std::to_string(cg) +
                                          " needs " + std::to_string(onebit::words_for(cg)) + " (weights " +
                                          shape_str(weights) + ")");
            }
            const std::int64_t bad = onebit::first_row_with_tail_bits(data, o * kh * kw, wg, cg);
            if (bad >= 0) {
              throw std::invalid_argument("BinaryConv2d: weights[" + std::to_string(bad / (kh * kw)) + ", " +
                                          std::to_string(bad % (kh * kw) / kw) + ", " + std::to_string(bad % kw) +
                                          "] has bits set beyond channel " + std::to_string(cg) +
                                          " (padding bits must be 0)");
            }
            nb::gil_scoped_release release;
            new (self) onebit::BinaryConv2d(data, o, kh, kw, in_channels, groups, s, p, d, pad_value, pe);
          },
          nb::arg("weights"), nb::arg("in_channels"), nb::arg("groups") = 1, nb::arg("stride") = nb::make_tuple(1, 1),
          nb::arg("padding") = nb::make_tuple(0, 0), nb::arg("dilation") = nb::make_tuple(1, 1),
          nb::arg("pad_value") = 1, nb::arg("padding_end") = nb::none())
      .def(
          "run",
          [](const onebit::BinaryConv2d& self, const AnyArray& x, int num_threads, const std::string& isa) {
            const ConvCall c(self, x, num_threads, isa, "BinaryConv2d.run");
            auto out = new_array4<std::int32_t>(c.n, c.oh, c.ow, self.out_channels());
            {
              nb::gil_scoped_release release;
              self.run(c.data, c.n, c.h, c.w, out.data(), c.threads, c.isa);
            }
            return out;
          },
          nb::arg("x"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          "int32 (N, OH, OW, O): the convolution of the packed (N, H, W, ceil(C/64)) uint64 input. "
          "num_threads 0 = default; isa '' = selected.")
      .def(
          "run_float",
          [](const onebit::BinaryConv2d& self, const AnyArray& x, const AnyArray& scale, const AnyArray& bias,
             const std::string& act, nb::handle post_scale, nb::handle post_bias, int num_threads,
             const std::string& isa, nb::handle residual, nb::handle prelu, bool signs,
             nb::handle sign_shift) -> nb::object {
            const char* fn = "BinaryConv2d.run_float";
            const ConvCall c(self, x, num_threads, isa, fn);
            const std::int64_t o = self.out_channels();
            StageArgs st(scale, bias, act, post_scale, post_bias, o, fn);
            // The fused steps after the stage (float_stage.h), each checked like the stage's.
            AnyArray res, si, sl, so, ss;
            auto array = [&](nb::handle h, AnyArray& into, const char* name) {
              if (!nb::try_cast(h, into)) throw std::invalid_argument(std::string(fn) + ": " + name + " must be a numpy array");
            };
            if (!residual.is_none()) {
              array(residual, res, "residual");
              st.stage.residual = checked<float>(res, 4, fn, "residual");
              if (static_cast<std::int64_t>(res.shape(0)) != c.n || static_cast<std::int64_t>(res.shape(1)) != c.oh ||
                  static_cast<std::int64_t>(res.shape(2)) != c.ow || static_cast<std::int64_t>(res.shape(3)) != o) {
                throw std::invalid_argument(std::string(fn) + ": residual must have the output's shape (" +
                                            std::to_string(c.n) + ", " + std::to_string(c.oh) + ", " +
                                            std::to_string(c.ow) + ", " + std::to_string(o) + "), got " +
                                            shape_str(res));
              }
            }
            if (nb::isinstance<nb::str>(prelu)) {
              if (nb::cast<std::string>(prelu) != "relu") {
                throw std::invalid_argument(std::string(fn) + ": prelu must be (shift_in, slope, shift_out) or 'relu', "
                                            "got '" + nb::cast<std::string>(prelu) + "'");
              }
              st.stage.relu_after = true;
            } else if (!prelu.is_none()) {
              if (!(nb::isinstance<nb::tuple>(prelu) || nb::isinstance<nb::list>(prelu)) || nb::len(prelu) != 3) {
                throw std::invalid_argument(std::string(fn) + ": prelu must be (shift_in, slope, shift_out) or 'relu'");
              }
              array(prelu[0], si, "prelu shift_in");
              array(prelu[1], sl, "prelu slope");
              array(prelu[2], so, "prelu shift_out");
              st.stage.prelu_shift_in = st.vector(si, o, fn, "prelu shift_in");
              st.stage.prelu_slope = st.vector(sl, o, fn, "prelu slope");
              st.stage.prelu_shift_out = st.vector(so, o, fn, "prelu shift_out");
            }
            if (!sign_shift.is_none()) {
              if (!signs) throw std::invalid_argument(std::string(fn) + ": sign_shift needs signs=True");
              array(sign_shift, ss, "sign_shift");
              st.stage.sign_shift = st.vector(ss, o, fn, "sign_shift");
            }
            auto out = new_array4<float>(c.n, c.oh, c.ow, o);
            nb::ndarray<nb::numpy, std::uint64_t, nb::ndim<4>> bits;
            if (signs) {
              bits = new_array4<std::uint64_t>(c.n, c.oh, c.ow, onebit::words_for(o));
              st.stage.signs = bits.data();
            }
            {
              nb::gil_scoped_release release;
              self.run_float(c.data, c.n, c.h, c.w, st.stage, out.data(), c.threads, c.isa);
            }
            if (signs) return nb::make_tuple(out, bits);
            return nb::cast(out);
          },
          nb::arg("x"), nb::arg("scale"), nb::arg("bias"), nb::arg("act") = "none", nb::arg("post_scale").none() = nb::none(),
          nb::arg("post_bias").none() = nb::none(), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          nb::arg("residual").none() = nb::none(), nb::arg("prelu").none() = nb::none(), nb::arg("signs") = false,
          nb::arg("sign_shift").none() = nb::none(),
          "float32 (N, OH, OW, O): act(y * scale + bias) * post_scale + post_bias per output channel (post_* "
          "optional; act none, relu or hardtanh), y the int32 convolution of run(), then optionally + residual "
          "(the output's shape) and RPReLU prelu=(shift_in, slope, shift_out) or prelu='relu' (z <= 0 -> 0, as "
          "numpy.maximum(z, 0)); each step rounded to float32. "
          "signs=True: returns (that, its packed signs (N, OH, OW, ceil(O/64)) uint64, bit 1 where "
          "value - sign_shift < 0).")
      .def(
          "run_threshold",
          [](const onebit::BinaryConv2d& self, const AnyArray& x, const AnyArray& thresholds, const AnyArray& flips,
             int num_threads, const std::string& isa, nb::handle pool, nb::handle and_mask) {
            const char* fn = "BinaryConv2d.run_threshold";
            ConvCall c(self, x, num_threads, isa, fn);
            const std::int32_t* t;
            const std::int8_t* f;
            check_thresholds(thresholds, flips, self.out_channels(), fn, "flips", &t, &f);
            const ThresholdPool p(self, pool, and_mask, c, fn);
            auto out = new_array4<std::uint64_t>(c.n, c.oh, c.ow, onebit::words_for(self.out_channels()));
            {
              nb::gil_scoped_release release;
              self.run_threshold(c.data, c.n, c.h, c.w, t, f, out.data(), c.threads, c.isa, p.ptr);
            }
            return out;
          },
          nb::arg("x"), nb::arg("thresholds"), nb::arg("flips"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          nb::arg("pool").none() = nb::none(), nb::arg("and_mask").none() = nb::none(),
          "Packed uint64 (N, OH, OW, ceil(O/64)): +1 (bit 0) iff flips[o] * (y - thresholds[o]) >= 0, "
          "y the convolution (the rule of bgemm_threshold). pool=(kernel, stride, padding) with and_mask: "
          "bmaxpool2d of that, fused (each task pools its rows while they are in cache).")
      .def(
          "_run_threshold_profiled",
          [](const onebit::BinaryConv2d& self, const AnyArray& x, const AnyArray& thresholds, const AnyArray& flips,
             int num_threads, const std::string& isa, nb::handle pool, nb::handle and_mask) {
            const char* fn = "BinaryConv2d._run_threshold_profiled";
            ConvCall c(self, x, num_threads, isa, fn);
            const std::int32_t* t;
            const std::int8_t* f;
            check_thresholds(thresholds, flips, self.out_channels(), fn, "flips", &t, &f);
            const ThresholdPool p(self, pool, and_mask, c, fn);
            auto out = new_array4<std::uint64_t>(c.n, c.oh, c.ow, onebit::words_for(self.out_channels()));
            onebit::BinaryConv2d::Profile prof;
            {
              nb::gil_scoped_release release;
              self.run_threshold(c.data, c.n, c.h, c.w, t, f, out.data(), c.threads, c.isa, p.ptr, &prof);
            }
            return nb::make_tuple(out, prof.im2col_s, prof.gemm_s, prof.epilogue_s);
          },
          nb::arg("x"), nb::arg("thresholds"), nb::arg("flips"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          nb::arg("pool").none() = nb::none(), nb::arg("and_mask").none() = nb::none(),
          "Benchmarking aid: run_threshold() plus the seconds spent in im2col, the GEMM and the "
          "threshold epilogue (with the fused pool), summed over threads: (bits, im2col_s, gemm_s, epilogue_s).")
      .def(
          "_run_profiled",
          [](const onebit::BinaryConv2d& self, const AnyArray& x, int num_threads, const std::string& isa) {
            const ConvCall c(self, x, num_threads, isa, "BinaryConv2d._run_profiled");
            auto out = new_array4<std::int32_t>(c.n, c.oh, c.ow, self.out_channels());
            onebit::BinaryConv2d::Profile prof;
            {
              nb::gil_scoped_release release;
              self.run(c.data, c.n, c.h, c.w, out.data(), c.threads, c.isa, &prof);
            }
            return nb::make_tuple(out, prof.im2col_s, prof.gemm_s, prof.epilogue_s);
          },
          nb::arg("x"), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          "Benchmarking aid: run() plus the seconds spent in im2col, the GEMM and the epilogue "
          "(zero-padding correction), summed over threads: (y, im2col_s, gemm_s, epilogue_s).")
      .def(
          "output_shape",
          [](const onebit::BinaryConv2d& self, std::int64_t h, std::int64_t w) {
            return pair_tuple(self.output_shape(h, w));
          },
          nb::arg("h"), nb::arg("w"), "(OH, OW) for an H x W input; ValueError if either would be < 1.")
      .def_prop_ro("out_channels", &onebit::BinaryConv2d::out_channels)
      .def_prop_ro("in_channels", &onebit::BinaryConv2d::in_channels)
      .def_prop_ro("groups", &onebit::BinaryConv2d::groups)
      .def_prop_ro("kernel_size", [](const onebit::BinaryConv2d& self) { return pair_tuple(self.kernel_size()); })
      .def_prop_ro("stride", [](const onebit::BinaryConv2d& self) { return pair_tuple(self.stride()); })
      .def_prop_ro("padding", [](const onebit::BinaryConv2d& self) { return pair_tuple(self.padding()); })
      .def_prop_ro("dilation", [](const onebit::BinaryConv2d& self) { return pair_tuple(self.dilation()); })
      .def_prop_ro("pad_value", &onebit::BinaryConv2d::pad_value);

  // ---- binary max-pool ----
  m.def(
      "bmaxpool2d",
      [](const AnyArray& x, std::int64_t channels, nb::handle kernel, nb::handle stride, nb::handle padding,
         const AnyArray& and_mask, int num_threads, const std::string& isa, nb::handle padding_end) {
        const char* fn = "bmaxpool2d";
        if (channels < 1) throw std::invalid_argument("bmaxpool2d: channels must be >= 1, got " + std::to_string(channels));
        const std::uint64_t* data = checked_nhwc(x, channels, fn);
        const std::uint64_t* mask = checked<std::uint64_t>(and_mask, 1, fn, "and_mask");
        const std::int64_t words = onebit::words_for(channels);
        if (static_cast<std::int64_t>(and_mask.shape(0)) != words) {
          throw std::invalid_argument("bmaxpool2d: and_mask must have " + std::to_string(words) + " words for " +
                                      std::to_string(channels) + " channels, got shape " + shape_str(and_mask));
        }
        if (onebit::first_row_with_tail_bits(mask, 1, words, channels) >= 0) {
          throw std::invalid_argument("bmaxpool2d: and_mask has bits set beyond channel " + std::to_string(channels) +
                                      " (padding bits must be 0)");
        }
        const auto k = pair_arg(kernel, fn, "kernel");
        const auto s = pair_arg(stride, fn, "stride");
        const auto p = pair_arg(padding, fn, "padding");
        const auto pe = end_arg(padding_end, fn, "padding_end");
        const int threads = checked_threads(num_threads, fn);
        const onebit::Isa which = onebit::resolve_isa(isa);
        const auto n = static_cast<std::int64_t>(x.shape(0)), h = static_cast<std::int64_t>(x.shape(1));
        const auto w = static_cast<std::int64_t>(x.shape(2));
        const auto shape = onebit::bmaxpool2d_output_shape(h, w, k, s, p, pe);
        auto out = new_array4<std::uint64_t>(n, shape[0], shape[1], words);
        {
          nb::gil_scoped_release release;
          onebit::bmaxpool2d(data, n, h, w, channels, k, s, p, mask, out.data(), threads, which, pe);
        }
        return out;
      },
      nb::arg("x"), nb::arg("channels"), nb::arg("kernel"), nb::arg("stride"), nb::arg("padding"),
      nb::arg("and_mask"), nb::arg("num_threads") = 0, nb::arg("isa") = "", nb::arg("padding_end") = nb::none(),
      "Max-pool of packed +-1 NHWC activations (N, H, W, ceil(C/64)) uint64, padded positions "
      "ignored (floor mode; 2 * padding <= kernel). Per channel: AND of the window's bits where "
      "and_mask has a 1 (max of +-1), OR elsewhere (min: pool after a threshold with flip -1). "
      "kernel, stride, padding (top, left): int or (h, w); padding_end (bottom, right), None for "
      "the same as padding (TensorFlow's 'same' pads one more after).");

  // ---- float convolution and pooling ----
  nb::class_<onebit::FloatConv2d>(
      m, "FloatConv2d",
      "Float 2-D convolution of NHWC float32 input with float32 weights (O, KH, KW, C/groups), input "
      "padded with pad_value; y is the float32 FMA chain over (kh, kw, c) in order (every ISA and "
      "thread count gives the same bits). run() fuses an optional max-pool of y and the output stage.")
      .def(
          "__init__",
          [](onebit::FloatConv2d* self, const AnyArray& weights, std::int64_t in_channels, std::int64_t groups,
             nb::handle stride, nb::handle padding, nb::handle dilation, float pad_value, nb::handle padding_end) {
            const char* fn = "FloatConv2d";
            const auto pe = padding_end.is_none() ? std::array<std::int64_t, 2>{-1, -1}
                                                  : pair_arg(padding_end, fn, "padding_end");
            const float* data = checked<float>(weights, 4, fn, "weights");
            const auto s = pair_arg(stride, fn, "stride");
            const auto p = pair_arg(padding, fn, "padding");
            const auto d = pair_arg(dilation, fn, "dilation");
            const auto o = static_cast<std::int64_t>(weights.shape(0));
            if (groups < 1 || in_channels < 1 || in_channels % groups != 0 ||
                static_cast<std::int64_t>(weights.shape(3)) != in_channels / groups) {
              throw std::invalid_argument("FloatConv2d: weights " + shape_str(weights) +
                                          " must be (O, KH, KW, in_channels / groups) with groups dividing in_channels=" +
                                          std::to_string(in_channels) + ", groups=" + std::to_string(groups));
            }
            nb::gil_scoped_release release;
            new (self) onebit::FloatConv2d(data, o, static_cast<std::int64_t>(weights.shape(1)),
                                           static_cast<std::int64_t>(weights.shape(2)), in_channels, groups, s, p, d,
                                           pad_value, pe);
          },
          nb::arg("weights"), nb::arg("in_channels"), nb::arg("groups") = 1, nb::arg("stride") = nb::make_tuple(1, 1),
          nb::arg("padding") = nb::make_tuple(0, 0), nb::arg("dilation") = nb::make_tuple(1, 1),
          nb::arg("pad_value") = 0.0f, nb::arg("padding_end") = nb::none())
      .def(
          "run",
          [](const onebit::FloatConv2d& self, const AnyArray& x, nb::handle scale, nb::handle bias,
             const std::string& act, bool bits, nb::handle pool, int num_threads, const std::string& isa,
             bool profile) -> nb::object {
            const char* fn = "FloatConv2d.run";
            const float* data = checked_float_nhwc(x, self.in_channels(), fn);
            const FconvArgs a = fconv_args(self, scale, bias, act, bits, pool, fn);
            const int threads = checked_threads(num_threads, fn);
            const onebit::Isa which = onebit::resolve_isa(isa);
            const auto n = static_cast<std::int64_t>(x.shape(0)), h = static_cast<std::int64_t>(x.shape(1));
            const auto w = static_cast<std::int64_t>(x.shape(2));
            auto shape = self.output_shape(h, w);
            if (a.pool.on) shape = onebit::fpool2d_output_shape(shape[0], shape[1], a.pool.kernel, a.pool.stride,
                                                                a.pool.padding, a.pool.padding_end);
            onebit::FconvProfile prof;
            nb::object out;
            void* dst;
            if (bits) {
              auto arr = new_array4<std::uint64_t>(n, shape[0], shape[1], onebit::words_for(self.out_channels()));
              dst = arr.data();
              out = nb::cast(arr);
            } else {
              auto arr = new_array4<float>(n, shape[0], shape[1], self.out_channels());
              dst = arr.data();
              out = nb::cast(arr);
            }
            {
              nb::gil_scoped_release release;
              self.run(data, n, h, w, a.stage, a.pool, dst, threads, which, profile ? &prof : nullptr);
            }
            if (profile) return nb::make_tuple(out, prof.prep_s, prof.gemm_s, prof.stage_s);
            return out;
          },
          nb::arg("x"), nb::arg("scale") = nb::none(), nb::arg("bias") = nb::none(), nb::arg("act") = "none",
          nb::arg("bits") = false, nb::arg("pool") = nb::none(), nb::arg("num_threads") = 0, nb::arg("isa") = "",
          nb::arg("profile") = false,
          "The convolution of float32 x (N, H, W, C), then max-pool (pool = (kernel, stride, padding), "
          "padded positions ignored) if given, then: raw y (no scale/bias); act(y * scale + bias) "
          "(act none, relu, hardtanh); or with bits=True packed uint64 (N, PH, PW, ceil(O/64)), bit 1 "
          "iff y * scale + bias < 0. profile=True returns (out, prep_s, gemm_s, stage_s), seconds "
          "summed over threads. num_threads 0 = default; isa '' = selected.")
      .def(
          "output_shape",
          [](const onebit::FloatConv2d& self, std::int64_t h, std::int64_t w) {
            return pair_tuple(self.output_shape(h, w));
          },
          nb::arg("h"), nb::arg("w"), "(OH, OW) for an H x W input; ValueError if either would be < 1.")
      .def_prop_ro("out_channels", &onebit::FloatConv2d::out_channels)
      .def_prop_ro("in_channels", &onebit::FloatConv2d::in_channels)
      .def_prop_ro("groups", &onebit::FloatConv2d::groups)
      .def_prop_ro("depthwise", &onebit::FloatConv2d::depthwise)
      .def_prop_ro("kernel_size", [](const onebit::FloatConv2d& self) { return pair_tuple(self.kernel_size()); })
      .def_prop_ro("stride", [](const onebit::FloatConv2d& self) { return pair_tuple(self.stride()); })
      .def_prop_ro("padding", [](const onebit::FloatConv2d& self) { return pair_tuple(self.padding()); })
      .def_prop_ro("dilation", [](const onebit::FloatConv2d& self) { return pair_tuple(self.dilation()); })
      .def_prop_ro("pad_value", &onebit::FloatConv2d::pad_value);

  m.def(
      "fconv_reference",
      [](const AnyArray& x, const AnyArray& weights, std::int64_t groups, nb::handle stride, nb::handle padding,
         nb::handle dilation, float pad_value) {
        const char* fn = "fconv_reference";
        const float* xd = checked<float>(x, 4, fn, "x");
        const float* wd = checked<float>(weights, 4, fn, "weights");
        const auto s = pair_arg(stride, fn, "stride");
        const auto p = pair_arg(padding, fn, "padding");
        const auto d = pair_arg(dilation, fn, "dilation");
        const auto c = static_cast<std::int64_t>(x.shape(3));
        // Validates sizes the way the class does.
        const onebit::FloatConv2d conv(wd, static_cast<std::int64_t>(weights.shape(0)),
                                       static_cast<std::int64_t>(weights.shape(1)),
                                       static_cast<std::int64_t>(weights.shape(2)), c, groups, s, p, d, pad_value);
        if (static_cast<std::int64_t>(weights.shape(3)) != c / groups) {
          throw std::invalid_argument("fconv_reference: weights " + shape_str(weights) + " must be (O, KH, KW, C / groups)");
        }
        const auto n = static_cast<std::int64_t>(x.shape(0)), h = static_cast<std::int64_t>(x.shape(1));
        const auto w = static_cast<std::int64_t>(x.shape(2));
        const auto shape = conv.output_shape(h, w);
        auto out = new_array4<float>(n, shape[0], shape[1], conv.out_channels());
        {
          nb::gil_scoped_release release;
          onebit::fconv_reference(xd, n, h, w, c, wd, conv.out_channels(), conv.kernel_size()[0],
                                  conv.kernel_size()[1], groups, s, p, d, pad_value, out.data());
        }
        return out;
      },
      nb::arg("x"), nb::arg("weights"), nb::arg("groups") = 1, nb::arg("stride") = nb::make_tuple(1, 1),
      nb::arg("padding") = nb::make_tuple(0, 0), nb::arg("dilation") = nb::make_tuple(1, 1),
      nb::arg("pad_value") = 0.0f,
      "The specification of FloatConv2d's y: plain loops, one thread, std::fma in (kh, kw, c) order.");

  m.def(
      "fpool2d",
      [](const AnyArray& x, nb::handle kernel, nb::handle stride, nb::handle padding, bool mean, int num_threads,
         nb::handle padding_end, const std::string& isa) {
        const char* fn = "fpool2d";
        const onebit::Isa which = onebit::resolve_isa(isa);
        const float* data = checked<float>(x, 4, fn, "x");
        const auto k = pair_arg(kernel, fn, "kernel");
        const auto s = pair_arg(stride, fn, "stride");
        const auto p = pair_arg(padding, fn, "padding");
        const auto pe = end_arg(padding_end, fn, "padding_end");
        const int threads = checked_threads(num_threads, fn);
        const auto n = static_cast<std::int64_t>(x.shape(0)), h = static_cast<std::int64_t>(x.shape(1));
        const auto w = static_cast<std::int64_t>(x.shape(2)), c = static_cast<std::int64_t>(x.shape(3));
        const auto shape = onebit::fpool2d_output_shape(h, w, k, s, p, pe);
        auto out = new_array4<float>(n, shape[0], shape[1], c);
        {
          nb::gil_scoped_release release;
          onebit::fpool2d(data, n, h, w, c, k, s, p, mean, out.data(), threads, pe, which);
        }
        return out;
      },
      nb::arg("x"), nb::arg("kernel"), nb::arg("stride"), nb::arg("padding"), nb::arg("mean") = false,
      nb::arg("num_threads") = 0, nb::arg("padding_end") = nb::none(), nb::arg("isa") = "",
      "Max- (or with mean=True average-) pool of float32 NHWC x (N, H, W, C), floor mode, 2 * padding "
      "<= kernel: max ignores padded positions, the average counts them as zeros (PyTorch's defaults). "
      "padding is (top, left); padding_end (bottom, right), None for the same as padding.");

  bind_plan(m);
}
