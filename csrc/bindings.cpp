// Python bindings of the onebit kernels (module onebit._core).
//
// The Python glue (onebit.runtime) checks arguments first and raises onebit's own
// errors; the checks here are the last guard: every array argument is taken untyped and
// checked by hand (dtype, rank, C-contiguity, shapes, padding bits), so a bad call raises
// ValueError with a message instead of crashing or reading out of bounds. Kernels run
// with the GIL released.
#include "bindings_common.h"
#include "embedding.h"

namespace nb = nanobind;
using namespace onebit_py;

namespace onebit_py {
void bind_plan(nb::module_& m);  // bindings_plan.cpp
}  // namespace onebit_py

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
      "concat_bits",
      [](const std::vector<AnyArray>& srcs, const std::vector<std::int64_t>& offsets,
         const std::vector<std::int64_t>& nbits, int num_threads) {
        const char* fn = "concat_bits";
        if (srcs.empty() || offsets.size() != srcs.size() || nbits.size() != srcs.size()) {
          throw std::invalid_argument(std::string(fn) + ": one offset and bit count per part, one part at least");
        }
        std::vector<const std::uint64_t*> data;
        std::vector<std::int64_t> strides;
        std::vector<std::size_t> lead;
        std::int64_t total = 0, rows = 1;
        for (std::size_t i = 0; i < srcs.size(); ++i) {
          const AnyArray& a = srcs[i];
          if (a.ndim() < 1) throw std::invalid_argument(std::string(fn) + ": parts must be at least 1-D");
          data.push_back(checked<std::uint64_t>(a, a.ndim(), fn, "part"));
          std::vector<std::size_t> l;
          for (std::size_t d = 0; d + 1 < a.ndim(); ++d) l.push_back(static_cast<std::size_t>(a.shape(d)));
          if (i == 0) {
            lead = l;
          } else if (l != lead) {
            throw std::invalid_argument(std::string(fn) + ": parts must agree in all but the last axis, got " +
                                        shape_str(srcs[0]) + " and " + shape_str(a));
          }
          const auto stride = static_cast<std::int64_t>(a.shape(a.ndim() - 1));
          if (nbits[i] < 1) {
            throw std::invalid_argument(std::string(fn) + ": each part needs at least 1 bit, got " +
                                        std::to_string(nbits[i]) + " for part " + std::to_string(i));
          }
          if (offsets[i] < 0 || offsets[i] + onebit::words_for(nbits[i]) > stride) {
            throw std::invalid_argument(std::string(fn) + ": part " + std::to_string(i) + "'s " +
                                        std::to_string(nbits[i]) + " bits at word " + std::to_string(offsets[i]) +
                                        " do not fit its rows of " + std::to_string(stride) + " words");
          }
          strides.push_back(stride);
          total += nbits[i];
        }
        for (std::size_t d : lead) rows *= static_cast<std::int64_t>(d);
        const int threads = checked_threads(num_threads, fn);
        lead.push_back(static_cast<std::size_t>(onebit::words_for(total)));
        auto out = new_array<std::uint64_t>(lead);
        {
          nb::gil_scoped_release release;
          onebit::concat_bits(data.data(), strides.data(), offsets.data(), nbits.data(), static_cast<int>(data.size()),
                              rows, onebit::words_for(total), out.data(), threads);
        }
        return out;
      },
      nb::arg("srcs"), nb::arg("offsets"), nb::arg("nbits"), nb::arg("num_threads") = 0,
      "Packed uint64 (..., ceil(sum(nbits) / 64)): per row, part i's nbits[i] bits (from word offsets[i] of "
      "its row; bits past them 0) after the earlier parts' bits: the concatenation of packed bit strings.");

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
             nb::handle sign_shift, nb::handle gate, bool residual_last) -> nb::object {
            const char* fn = "BinaryConv2d.run_float";
            const ConvCall c(self, x, num_threads, isa, fn);
            const std::int64_t o = self.out_channels();
            StageArgs st(scale, bias, act, post_scale, post_bias, o, fn);
            // The fused steps after the stage (float_stage.h), each checked like the stage's.
            AnyArray res, si, sl, so, ss, ga;
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
            if (residual_last && residual.is_none()) {
              throw std::invalid_argument(std::string(fn) + ": residual_last needs a residual");
            }
            st.stage.residual_last = residual_last;
            if (!gate.is_none()) {
              array(gate, ga, "gate");
              st.stage.gate = checked<float>(ga, 2, fn, "gate");
              if (static_cast<std::int64_t>(ga.shape(0)) != c.n || static_cast<std::int64_t>(ga.shape(1)) != o) {
                throw std::invalid_argument(std::string(fn) + ": gate must be (N, O) = (" + std::to_string(c.n) +
                                            ", " + std::to_string(o) + "), got " + shape_str(ga));
              }
              st.stage.gate_rows = c.oh * c.ow;
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
          nb::arg("sign_shift").none() = nb::none(), nb::arg("gate").none() = nb::none(),
          nb::arg("residual_last") = false,
          "float32 (N, OH, OW, O): act(y * scale + bias) * post_scale + post_bias per output channel (post_* "
          "optional; act none, relu or hardtanh), y the int32 convolution of run(), then optionally times "
          "gate[n, o] (a per-sample channel gate, (N, O) float32), + residual (the output's shape) and RPReLU "
          "prelu=(shift_in, slope, shift_out) or prelu='relu' (z <= 0 -> 0, as numpy.maximum(z, 0)); "
          "residual_last=True adds the residual after the RPReLU instead; each step rounded to float32. "
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
