// Python bindings of the graph executor's program (executor.h): _core.Plan and its steps.
#include <array>
#include <memory>
#include <tuple>
#include <vector>

#include <nanobind/stl/tuple.h>

#include "bindings_common.h"
#include "embedding.h"
#include "executor.h"

namespace onebit_py {

namespace {

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

// An elementwise step's src and dst: float values of the same size per sample; returns it.
std::int64_t same_float_values(const Plan& plan, int src, int dst, const char* fn) {
  need_value(plan, src, plan.per_sample(src), false, fn, "src");
  need_value(plan, dst, plan.per_sample(src), false, fn, "dst");
  return plan.per_sample(src);
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

  // The stage of c channels from a binding's arguments (each vector optional; post_* together).
  static DenseStage checked(nb::handle scale, nb::handle bias, const std::string& act, nb::handle post_scale,
                            nb::handle post_bias, bool bits, std::int64_t c, const char* fn) {
    DenseStage st;
    st.scale = copy_vector(scale, c, fn, "scale");
    st.bias = copy_vector(bias, c, fn, "bias");
    st.post_scale = copy_vector(post_scale, c, fn, "post_scale");
    st.post_bias = copy_vector(post_bias, c, fn, "post_bias");
    if (st.post_scale.empty() != st.post_bias.empty()) {
      throw std::invalid_argument(std::string(fn) + ": post_scale and post_bias must be given together");
    }
    st.act = act_code(act, fn);
    st.bits = bits;
    return st;
  }

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

}  // namespace

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
          "pack_planes",
          [](Plan& p, int src, int dst, std::int64_t c, const std::vector<std::tuple<nb::handle, nb::handle, nb::handle>>& planes) {
            const char* fn = "Plan.pack_planes";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (c < 1 || planes.empty()) throw std::invalid_argument("Plan.pack_planes: c >= 1 and one plane at least");
            if (p.per_sample(src) % c) throw std::invalid_argument("Plan.pack_planes: bad src size");
            const std::int64_t rows = p.per_sample(src) / c;
            const int np = static_cast<int>(planes.size());
            need_value(p, src, rows * c, false, fn, "src");
            need_value(p, dst, rows * np * onebit::words_for(c), true, fn, "dst");
            // Per plane: shift, scale, bias (each c floats or empty), and their pointers (null
            // for empty), made once here, not per run.
            struct Planes {
              std::vector<std::array<std::vector<float>, 3>> data;
              std::vector<const float*> shift, scale, bias;
            };
            auto v = std::make_shared<Planes>();
            for (const auto& [shift, scale, bias] : planes) {
              if (scale.is_none() != bias.is_none()) throw std::invalid_argument("Plan.pack_planes: scale and bias together");
              v->data.push_back({copy_vector(shift, c, fn, "shift"), copy_vector(scale, c, fn, "scale"),
                                 copy_vector(bias, c, fn, "bias")});
            }
            for (const auto& q : v->data) {
              v->shift.push_back(data_or_null(q[0]));
              v->scale.push_back(data_or_null(q[1]));
              v->bias.push_back(data_or_null(q[2]));
            }
            p.step("sign planes", {src}, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::pack_planes(at<const float>(s, src), n * rows, c, np, v->scale.data(), v->bias.data(),
                                  v->shift.data(), at<std::uint64_t>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("c"), nb::arg("planes"))
      .def(
          "affine_mean_sign",
          [](Plan& p, int src, int mean, int bits, std::int64_t hw, std::int64_t c, nb::handle scale, nb::handle bias,
             nb::handle shift) {
            const char* fn = "Plan.affine_mean_sign";
            const onebit::Isa isa = onebit::resolve_isa("");  // ONEBIT_ISA, read when the step is planned
            if (hw < 1 || c < 1) throw std::invalid_argument("Plan.affine_mean_sign: hw and c must be >= 1");
            need_value(p, src, hw * c, false, fn, "src");
            need_value(p, mean, c, false, fn, "mean");
            need_value(p, bits, hw * onebit::words_for(c), true, fn, "bits");
            if (scale.is_none() || bias.is_none()) throw std::invalid_argument("Plan.affine_mean_sign: needs scale and bias");
            auto v = std::make_shared<std::array<std::vector<float>, 3>>(std::array<std::vector<float>, 3>{
                copy_vector(scale, c, fn, "scale"), copy_vector(bias, c, fn, "bias"), copy_vector(shift, c, fn, "shift")});
            p.step("affine, mean and sign", {src}, {mean, bits}, [=](void* const* s, std::int64_t n, int threads) {
              onebit::affine_mean_sign(at<const float>(s, src), n, hw, c, (*v)[0].data(), (*v)[1].data(),
                                       data_or_null((*v)[2]), at<float>(s, mean), at<std::uint64_t>(s, bits), threads,
                                       isa);
            });
          },
          nb::arg("src"), nb::arg("mean"), nb::arg("bits"), nb::arg("hw"), nb::arg("c"), nb::arg("scale"),
          nb::arg("bias"), nb::arg("shift").none())
      .def(
          "concat_bits",
          [](Plan& p, const std::vector<int>& srcs, const std::vector<std::int64_t>& strides,
             const std::vector<std::int64_t>& offsets, const std::vector<std::int64_t>& nbits, int dst) {
            const char* fn = "Plan.concat_bits";
            const std::size_t k = srcs.size();
            if (k == 0 || strides.size() != k || offsets.size() != k || nbits.size() != k) {
              throw std::invalid_argument("Plan.concat_bits: one stride, offset and bit count per part, one part at least");
            }
            std::int64_t total = 0;
            for (std::size_t i = 0; i < k; ++i) {
              if (nbits[i] < 1 || strides[i] < 1 || offsets[i] < 0 || offsets[i] + onebit::words_for(nbits[i]) > strides[i]) {
                throw std::invalid_argument("Plan.concat_bits: each part's bits must lie within its row");
              }
              total += nbits[i];
            }
            if (p.per_sample(srcs[0]) % strides[0]) throw std::invalid_argument("Plan.concat_bits: bad part size");
            const std::int64_t rows = p.per_sample(srcs[0]) / strides[0];
            for (std::size_t i = 0; i < k; ++i) need_value(p, srcs[i], rows * strides[i], true, fn, "part");
            const std::int64_t ow = onebit::words_for(total);
            need_value(p, dst, rows * ow, true, fn, "dst");
            p.step("concat bits", srcs, {dst}, [=](void* const* s, std::int64_t n, int threads) {
              std::vector<const std::uint64_t*> parts;
              for (int id : srcs) parts.push_back(at<const std::uint64_t>(s, id));
              onebit::concat_bits(parts.data(), strides.data(), offsets.data(), nbits.data(), static_cast<int>(k),
                                  n * rows, ow, at<std::uint64_t>(s, dst), threads);
            });
          },
          nb::arg("srcs"), nb::arg("strides"), nb::arg("offsets"), nb::arg("nbits"), nb::arg("dst"))
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
            const DenseStage st = DenseStage::checked(scale, bias, act, post_scale, post_bias, bits, c, fn);
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
                int residual, nb::handle prelu, int bits_dst, nb::handle sign_shift, int gate, bool residual_last) {
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
            } else if (residual_last) {
              throw std::invalid_argument("Plan.bconv_float: residual_last needs a residual");
            }
            if (gate >= 0) {
              need_value(p, gate, o, false, fn, "gate");  // one row of O per sample
              reads.push_back(gate);
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
              st.residual_last = residual_last;
              st.gate = gate >= 0 ? at<const float>(s, gate) : nullptr;
              st.gate_rows = pixels;
              st.signs = bits_dst >= 0 ? at<std::uint64_t>(s, bits_dst) : nullptr;
              st.sign_shift = data_or_null((*v)[7]);
              cp->run_float(at<const std::uint64_t>(s, src), n, h, w, st, at<float>(s, dst), threads, isa);
            });
          },
          nb::arg("src"), nb::arg("dst"), nb::arg("conv"), nb::arg("h"), nb::arg("w"), nb::arg("scale"), nb::arg("bias"),
          nb::arg("act"), nb::arg("post_scale").none(), nb::arg("post_bias").none(), nb::arg("residual"),
          nb::arg("prelu").none(), nb::arg("bits_dst"), nb::arg("sign_shift").none(), nb::arg("gate") = -1,
          nb::arg("residual_last") = false, nb::keep_alive<1, 4>())
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
            const DenseStage st = DenseStage::checked(scale, bias, act, post_scale, post_bias, bits, o, fn);
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
            same_float_values(p, src, dst, fn);
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
            same_float_values(p, src, dst, fn);
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
            const std::int64_t size = same_float_values(p, src, dst, fn);
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
            const std::int64_t size = same_float_values(p, src, dst, fn);
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
            // maxpool(affine(concat(parts))) [then relu], each part's window rows read in place.
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
              std::vector<const float*> parts;
              for (int id : srcs) parts.push_back(at<const float>(s, id));
              onebit::faffine_maxpool_parts(parts.data(), channels.data(), static_cast<int>(parts.size()), n, h, w,
                                            (*v)[0].data(), (*v)[1].data(), pl.kernel, pl.stride, pl.padding,
                                            pl.padding_end, relu, at<float>(s, dst), threads, isa);
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

}  // namespace onebit_py
