// Shared by the binding units (bindings.cpp, bindings_plan.cpp): the argument checks every
// binding makes by hand (dtype, rank, C-contiguity, shapes, padding bits) so that a bad call
// raises ValueError with a message instead of crashing, and the new-array helpers.
#pragma once

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
#include "layout.h"
#include "threadpool.h"

namespace nb = nanobind;

namespace onebit_py {


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
inline const char* dtype_name<float>() { return "float32"; }
template <>
inline const char* dtype_name<std::uint64_t>() { return "uint64"; }
template <>
inline const char* dtype_name<std::int32_t>() { return "int32"; }
template <>
inline const char* dtype_name<std::int8_t>() { return "int8"; }

inline std::string shape_str(const AnyArray& x) {
  std::string s = "(";
  for (std::size_t i = 0; i < x.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(x.shape(i));
  }
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// (MACs, seconds) of one run of a peak loop on this thread, the GIL released.
inline std::pair<std::uint64_t, double> timed_peak(std::uint64_t (*peak)(std::int64_t), std::int64_t iters) {
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

inline int checked_threads(int num_threads, const char* fn) {
  if (num_threads == 0) return onebit::default_num_threads();
  if (num_threads < 0 || num_threads > onebit::kMaxThreads) {
    throw std::invalid_argument(std::string(fn) + ": num_threads must be in 1.." +
                                std::to_string(onebit::kMaxThreads) + " (0 = default), got " +
                                std::to_string(num_threads));
  }
  return num_threads;
}

// Activations: 2-D uint64 (M, words) matching the weights, zero tail bits.
inline const std::uint64_t* checked_activations(const AnyArray& a, const onebit::PackedWeights& w, const char* fn) {
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
inline std::array<std::int64_t, 2> pair_arg(nb::handle h, const char* fn, const char* what) {
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
inline std::array<std::int64_t, 2> end_arg(nb::handle h, const char* fn, const char* what) {
  return h.is_none() ? std::array<std::int64_t, 2>{-1, -1} : pair_arg(h, fn, what);
}

inline nb::tuple pair_tuple(const std::array<std::int64_t, 2>& p) { return nb::make_tuple(p[0], p[1]); }

// Packed NHWC activations: 4-D uint64 (N, H, W, ceil(channels / 64)), zero tail bits.
inline const std::uint64_t* checked_nhwc(const AnyArray& x, std::int64_t channels, const char* fn) {
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
inline void check_thresholds(const AnyArray& thresholds, const AnyArray& flips, std::int64_t n, const char* fn,
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

inline std::vector<std::string> isa_names(const std::vector<onebit::Isa>& isas) {
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

inline FconvArgs fconv_args(const onebit::FloatConv2d& conv, nb::handle scale, nb::handle bias, const std::string& act,
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
inline const float* checked_float_nhwc(const AnyArray& x, std::int64_t channels, const char* fn) {
  const float* data = checked<float>(x, 4, fn, "x");
  if (static_cast<std::int64_t>(x.shape(3)) != channels) {
    throw std::invalid_argument(std::string(fn) + ": x has " + std::to_string(x.shape(3)) + " channels, expected " +
                                std::to_string(channels) + " (x must be (N, H, W, C) float32)");
  }
  return data;
}

}  // namespace onebit_py
