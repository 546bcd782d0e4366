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

#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bgemm.h"
#include "bitpack.h"
#include "dispatch.h"
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

std::vector<std::string> isa_names(const std::vector<onebit::Isa>& isas) {
  std::vector<std::string> out;
  for (onebit::Isa isa : isas) out.emplace_back(onebit::isa_name(isa));
  return out;
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
        std::uint64_t macs;
        double seconds;
        {
          nb::gil_scoped_release release;
          const auto t0 = std::chrono::steady_clock::now();
          macs = k.peak(iters);
          seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        return nb::make_tuple(macs, seconds, std::string(k.peak_mix));
      },
      nb::arg("isa"), nb::arg("iters"),
      "Run the ISA's register-resident peak loop (the micro-kernel's steady-state instruction "
      "mix with loads taken out) for iters iterations on this thread; returns (binary MACs, "
      "seconds, instruction mix). Peak binary MACs/s = MACs / seconds.");

  m.def("bgemm_micro_rows", [](const std::string& isa) { return onebit::bgemm_kernels(onebit::resolve_isa(isa)).mr; },
        nb::arg("isa") = "", "Activation rows per micro-kernel call (MR) of an ISA.");
  m.attr("BGEMM_NR") = onebit::kBgemmNR;
  m.attr("BGEMM_KC_WORDS") = onebit::kBgemmKC;

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
}
