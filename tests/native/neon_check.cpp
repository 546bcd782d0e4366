// NEON kernels against the scalar reference, on AArch64 (run by .ci/neon under
// qemu-aarch64; no Python).
//
// Compiled together with every kernel source (csrc/*.cpp but the bindings*.cpp), it checks:
//   * dispatch: the known ISAs are scalar and neon, neon is selected unless ONEBIT_ISA
//     names another, and x86 names are refused with the valid choices;
//   * bit packing: the NEON pack / unpack kernels and the threaded driver equal the scalar
//     reference byte for byte, on random rows with -0.0, NaNs of either sign, infinities,
//     denormals, and every column count mod 64 around the word boundaries;
//   * the bgemm micro-kernel (every mr, nr, several kc, all four flag combinations, strided
//     a and c, nothing outside the mr x nr block written) and the threshold output stage;
//   * the drivers bgemm and bgemm_threshold against bgemm_reference and the threshold rule,
//     on random shapes (K not a multiple of 64, odd M and N, K blocking), 1 and 3 threads;
//   * BinaryConv2d::run / run_threshold, bmaxpool2d and fgemm_bw with isa = neon against
//     isa = scalar (the conv uses the NEON micro-kernels, the others a scalar fallback);
//   * the peak loop's MAC count.
// Every mismatch is printed (the first 20); the exit status is 1 if there was any.
//
// Usage: neon_check [random bgemm shapes, default 60]   (all checks)
//        neon_check --dispatch                          (the dispatch checks only; .ci/neon
//                                                        runs them under several ONEBIT_ISA)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bconv.h"
#include "channel_ops.h"
#include "bgemm.h"
#include "bitpack.h"
#include "dispatch.h"
#include "fgemm_bw.h"

#if !defined(__aarch64__)
#error "neon_check is built for AArch64 (see .ci/neon)"
#endif

namespace {

using onebit::Isa;

std::mt19937_64 rng(20261127);
int failures = 0;
int checks = 0;

void fail(const std::string& what) {
  if (failures < 20) std::fprintf(stderr, "MISMATCH: %s\n", what.c_str());
  ++failures;
}

template <typename T>
void expect_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  ++checks;
  if (got.size() != want.size() || std::memcmp(got.data(), want.data(), got.size() * sizeof(T)) != 0) {
    std::size_t i = 0;
    while (i < got.size() && i < want.size() && std::memcmp(&got[i], &want[i], sizeof(T)) == 0) ++i;
    fail(what + " (first difference at element " + std::to_string(i) + ")");
  }
}

std::int64_t uniform(std::int64_t lo, std::int64_t hi) {  // inclusive
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

// n rows of k random bits, packed, tail bits 0.
std::vector<std::uint64_t> random_bits(std::int64_t n, std::int64_t k) {
  const std::int64_t words = onebit::words_for(k);
  std::vector<std::uint64_t> out(static_cast<std::size_t>(n * words));
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t w = 0; w < words; ++w) {
      std::uint64_t v = rng();
      const std::int64_t valid = std::min<std::int64_t>(64, k - 64 * w);
      if (valid < 64) v &= (std::uint64_t{1} << valid) - 1;
      out[r * words + w] = v;
    }
  }
  return out;
}

// Floats of every kind the packer must classify: normals of both signs, +-0, NaNs of
// either sign, +-inf, denormals, +-FLT_MIN.
std::vector<float> random_floats(std::size_t n) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float specials[] = {0.0f, -0.0f, nan, -nan, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 1e-45f, -1e-45f,
                            std::numeric_limits<float>::min(), -std::numeric_limits<float>::min()};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = uniform(0, 9) == 0 ? specials[uniform(0, 9)] : normal(rng);
  return out;
}

// ---- dispatch ----

void check_dispatch() {
  const std::vector<Isa> isas = onebit::available_isas();
  ++checks;
  if (isas != std::vector<Isa>{Isa::scalar, Isa::neon}) fail("available_isas() is not {scalar, neon}");
  ++checks;
  if (!onebit::isa_supported(Isa::neon) || onebit::isa_supported(Isa::avx2)) fail("isa_supported");
  // ONEBIT_ISA unset: neon; scalar or neon: that one; anything else: a clear error.
  const char* env = std::getenv("ONEBIT_ISA");
  const std::string want = env != nullptr && *env != '\0' ? env : "neon";
  ++checks;
  if (want == "neon" || want == "scalar") {
    if (onebit::isa_name(onebit::selected_isa()) != want) {
      fail(std::string("selected_isa() is ") + onebit::isa_name(onebit::selected_isa()) + ", expected " + want);
    } else if (onebit::resolve_isa("") != onebit::selected_isa()) {
      fail("resolve_isa(\"\") is not selected_isa()");
    }
  } else {
    try {
      const char* got = onebit::isa_name(onebit::selected_isa());
      fail("selected_isa() accepted ONEBIT_ISA=" + want + ": " + got);
    } catch (const std::invalid_argument& e) {
      if (std::string(e.what()) != "ONEBIT_ISA='" + want + "' is not a known ISA; valid choices: scalar, neon") {
        fail(std::string("ONEBIT_ISA message: ") + e.what());
      }
    }
  }
  ++checks;
  if (onebit::parse_isa("neon") != Isa::neon || onebit::parse_isa("scalar") != Isa::scalar) fail("parse_isa");
  for (const char* name : {"avx2", "avx512", "NEON"}) {
    ++checks;
    try {
      onebit::parse_isa(name);
      fail(std::string("parse_isa accepted ") + name);
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      if (msg != std::string("unknown ISA '") + name + "'; valid choices: scalar, neon") {
        fail("parse_isa message: " + msg);
      }
    }
  }
  ++checks;
  if (onebit::cpu_features().find("neon") == std::string::npos) fail("cpu_features() lacks neon");
}

// ---- bit packing ----

void check_bitpack() {
  const onebit::BitpackKernels& neon = onebit::bitpack_kernels(Isa::neon);
  ++checks;
  if (&neon != &onebit::kBitpackNeon || neon.pack == nullptr) fail("bitpack_kernels(neon) is not the NEON table");
  std::vector<std::int64_t> col_counts;
  for (std::int64_t c = 1; c <= 200; ++c) col_counts.push_back(c);
  for (std::int64_t c : {255, 256, 257, 1000, 1023, 4096}) col_counts.push_back(c);
  for (std::int64_t cols : col_counts) {
    const std::int64_t rows = uniform(1, 5), words = onebit::words_for(cols);
    const std::vector<float> x = random_floats(static_cast<std::size_t>(rows * cols));
    std::vector<std::uint64_t> got(static_cast<std::size_t>(rows * words), ~0ull), want = got;
    neon.pack(x.data(), rows, cols, got.data());
    onebit::pack_rows_f32_scalar(x.data(), rows, cols, want.data());
    expect_equal(got, want, "pack rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
    std::vector<float> back(static_cast<std::size_t>(rows * cols), 7.0f), back_ref = back;
    neon.unpack(want.data(), rows, cols, back.data());
    onebit::unpack_rows_f32_scalar(want.data(), rows, cols, back_ref.data());
    expect_equal(back, back_ref, "unpack rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
  }
  // The threaded, dispatched driver on inputs big enough to be split.
  for (const auto& shape : {std::array<std::int64_t, 2>{257, 1000}, {1031, 77}, {3, 100000}}) {
    const std::int64_t rows = shape[0], cols = shape[1], words = onebit::words_for(cols);
    const std::vector<float> x = random_floats(static_cast<std::size_t>(rows * cols));
    std::vector<std::uint64_t> want(static_cast<std::size_t>(rows * words));
    onebit::pack_rows_f32_scalar(x.data(), rows, cols, want.data());
    std::vector<float> back_ref(static_cast<std::size_t>(rows * cols));
    onebit::unpack_rows_f32_scalar(want.data(), rows, cols, back_ref.data());
    for (int threads : {1, 3}) {
      const std::string what = " " + std::to_string(rows) + "x" + std::to_string(cols) + " threads=" +
                               std::to_string(threads);
      std::vector<std::uint64_t> got(want.size(), ~0ull);
      onebit::pack_rows_f32(x.data(), rows, cols, got.data(), threads, Isa::neon);
      expect_equal(got, want, "pack_rows_f32" + what);
      std::vector<float> back(back_ref.size(), 7.0f);
      onebit::unpack_rows_f32(want.data(), rows, cols, back.data(), threads, Isa::neon);
      expect_equal(back, back_ref, "unpack_rows_f32" + what);
    }
  }
}

// ---- bgemm micro-kernel and threshold stage ----

void check_ukernel() {
  const onebit::BgemmKernels& neon = onebit::bgemm_kernels(Isa::neon);
  const onebit::BgemmKernels& scalar = onebit::kBgemmScalar;
  ++checks;
  if (&neon != &onebit::kBgemmNeon || neon.ukernel == nullptr || neon.mr < 1) {
    fail("bgemm_kernels(neon) is not the NEON table");
    return;
  }
  constexpr std::int64_t nr_max = onebit::kBgemmNR;
  // Data: random bits, or a = 0 against w = all ones, so that every byte of every word
  // differs in all 8 bits (the largest counts the byte accumulators must hold).
  constexpr std::int64_t kcs[] = {1, 2, 30, 31, 32, 62, 63, 64, 100, 128};
  for (int pass = 0; pass < 20; ++pass) {
    const bool saturated = pass >= 10;
    const std::int64_t kc = kcs[pass % 10];
    const std::int64_t lda = kc + uniform(0, 3), ldc = nr_max + uniform(0, 5);
    std::vector<std::uint64_t> a = random_bits(neon.mr, 64 * lda);
    std::vector<std::uint64_t> wt(static_cast<std::size_t>(kc * nr_max));
    for (auto& v : wt) v = saturated ? ~0ull : rng();
    if (saturated) std::fill(a.begin(), a.end(), 0ull);
    for (std::int64_t mr = 1; mr <= neon.mr; ++mr) {
      for (std::int64_t nr = 1; nr <= nr_max; ++nr) {
        for (unsigned flags = 0; flags < 4; ++flags) {
          // Rows beyond mr and columns beyond nr hold a sentinel that must survive.
          std::vector<std::int32_t> c(static_cast<std::size_t>((neon.mr + 1) * ldc), -12345);
          for (std::int64_t i = 0; i < mr; ++i)
            for (std::int64_t j = 0; j < nr; ++j) c[i * ldc + j] = static_cast<std::int32_t>(uniform(-5000, 5000));
          std::vector<std::int32_t> want = c;
          const auto k_bits = static_cast<std::int32_t>(64 * kc - uniform(0, 63));
          neon.ukernel(mr, nr, kc, a.data(), lda, wt.data(), c.data(), ldc, k_bits, flags);
          scalar.ukernel(mr, nr, kc, a.data(), lda, wt.data(), want.data(), ldc, k_bits, flags);
          expect_equal(c, want, "ukernel mr=" + std::to_string(mr) + " nr=" + std::to_string(nr) + " kc=" +
                                    std::to_string(kc) + " flags=" + std::to_string(flags));
        }
      }
    }
  }
  for (int round = 0; round < 8; ++round) {
    const std::int64_t ldc = nr_max + uniform(0, 3), ldo = uniform(1, 3);
    for (std::int64_t mr = 1; mr <= neon.mr; ++mr) {
      for (std::int64_t nr = 1; nr <= nr_max; ++nr) {
        // Values close to the thresholds, so that ties (C == T) are common.
        std::vector<std::int32_t> c(static_cast<std::size_t>(mr * ldc)), thresh(static_cast<std::size_t>(nr));
        for (auto& v : thresh) v = static_cast<std::int32_t>(uniform(-100, 100));
        for (std::int64_t i = 0; i < mr; ++i)
          for (std::int64_t j = 0; j < nr; ++j)
            c[i * ldc + j] = thresh[j] + static_cast<std::int32_t>(uniform(-2, 2));
        const auto neg = static_cast<std::uint32_t>(rng());
        std::vector<std::uint32_t> out(static_cast<std::size_t>(mr * ldo), 0xdeadbeefu), want = out;
        neon.threshold(mr, nr, c.data(), ldc, thresh.data(), neg, out.data(), ldo);
        scalar.threshold(mr, nr, c.data(), ldc, thresh.data(), neg, want.data(), ldo);
        expect_equal(out, want, "threshold mr=" + std::to_string(mr) + " nr=" + std::to_string(nr));
      }
    }
  }
  ++checks;
  if (neon.peak == nullptr || neon.peak(1000) != 1000u * 8u * 128u) fail("peak loop MAC count");
}

// ---- drivers ----

// The threshold rule of bgemm.h on a reference C: bit 1 (-1) iff s * (C - T) < 0.
std::vector<std::uint64_t> threshold_ref(const std::vector<std::int32_t>& c, std::int64_t m, std::int64_t n,
                                         const std::vector<std::int32_t>& thresh,
                                         const std::vector<std::int8_t>& sign) {
  const std::int64_t words = onebit::words_for(n);
  std::vector<std::uint64_t> out(static_cast<std::size_t>(m * words), 0);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t d = static_cast<std::int64_t>(c[i * n + j]) - thresh[j];
      if (sign[j] * d < 0) out[i * words + j / 64] |= 1ull << (j % 64);
    }
  }
  return out;
}

// saturated: a all +1 and w all -1 (every bit pair differs: C = -K everywhere).
void check_bgemm_shape(std::int64_t m, std::int64_t n, std::int64_t k, bool saturated = false) {
  const std::int64_t words = onebit::words_for(k);
  std::vector<std::uint64_t> a = random_bits(m, k), w = random_bits(n, k);
  if (saturated) {
    std::fill(a.begin(), a.end(), 0ull);
    for (std::size_t q = 0; q < w.size(); ++q) {
      const std::int64_t valid = std::min<std::int64_t>(64, k - 64 * static_cast<std::int64_t>(q % words));
      w[q] = valid < 64 ? (1ull << valid) - 1 : ~0ull;
    }
  }
  const onebit::PackedWeights pw(w.data(), n, words, k);
  std::vector<std::int32_t> want(static_cast<std::size_t>(m * n));
  onebit::bgemm_reference(a.data(), m, w.data(), n, words, k, want.data());
  std::vector<std::int32_t> thresh(static_cast<std::size_t>(n));
  std::vector<std::int8_t> sign(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) {
    // Thresholds at an actual output value half of the time: ties must follow the rule.
    thresh[j] = uniform(0, 1) ? want[uniform(0, m - 1) * n + j] : static_cast<std::int32_t>(uniform(-k, k));
    sign[j] = uniform(0, 1) ? 1 : -1;
  }
  const std::vector<std::uint64_t> bits_want = threshold_ref(want, m, n, thresh, sign);
  for (int threads : {1, 3}) {
    const std::string what = " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
                             (saturated ? " saturated" : "") + " threads=" + std::to_string(threads);
    std::vector<std::int32_t> c(want.size(), -7);
    onebit::bgemm(a.data(), m, pw, c.data(), threads, Isa::neon);
    expect_equal(c, want, "bgemm" + what);
    std::vector<std::uint64_t> bits(bits_want.size(), ~0ull);
    onebit::bgemm_threshold(a.data(), m, pw, thresh.data(), sign.data(), bits.data(), threads, Isa::neon);
    expect_equal(bits, bits_want, "bgemm_threshold" + what);
  }
}

void check_bgemm(int shapes) {
  // Edges: GEMV, one micro-kernel of rows, a partial tile, K blocks (kBgemmKC words).
  const std::int64_t kc_bits = 64 * onebit::kBgemmKC;
  for (const auto& s : std::vector<std::array<std::int64_t, 3>>{{1, 1, 1},
                                                                 {1, 32, 64},
                                                                 {4, 33, 65},
                                                                 {5, 31, 63},
                                                                 {7, 100, 1000},
                                                                 {1, 300, kc_bits + 70},
                                                                 {9, 65, kc_bits + 1},
                                                                 {37, 40, 3 * kc_bits - 5},
                                                                 {70, 96, 576},
                                                                 {131, 67, 129}}) {
    check_bgemm_shape(s[0], s[1], s[2]);
  }
  check_bgemm_shape(5, 40, kc_bits + 100, true);
  check_bgemm_shape(1, 33, 4000, true);
  for (int i = 0; i < shapes; ++i) {
    const std::int64_t m = uniform(0, 3) == 0 ? uniform(1, 4) : uniform(1, 80);
    const std::int64_t n = uniform(1, 130);
    const std::int64_t k = uniform(0, 5) == 0 ? uniform(kc_bits - 64, kc_bits + 200) : uniform(1, 700);
    check_bgemm_shape(m, n, k);
  }
}

// ---- the other kernel families, isa = neon against isa = scalar ----

struct ConvCase {
  std::int64_t o, kh, kw, c, groups, stride, pad, dil;
  int pad_value;
  std::int64_t n, h, w;
};

void check_bconv() {
  const ConvCase cases[] = {
      {32, 3, 3, 64, 1, 1, 1, 1, -1, 2, 9, 9},  {33, 3, 3, 70, 1, 1, 1, 1, 0, 1, 8, 11},
      {17, 3, 3, 3, 1, 2, 1, 1, 1, 3, 13, 7},   {64, 1, 1, 100, 1, 1, 0, 1, 0, 2, 5, 5},
      {40, 5, 3, 65, 1, 2, 2, 1, 0, 1, 12, 10}, {48, 3, 3, 128, 2, 1, 1, 2, -1, 1, 10, 10},
      {96, 3, 3, 256, 1, 1, 1, 1, 0, 1, 14, 14},
  };
  for (const ConvCase& t : cases) {
    const std::int64_t cg = t.c / t.groups;
    const std::vector<std::uint64_t> w = random_bits(t.o * t.kh * t.kw, cg);
    const onebit::BinaryConv2d conv(w.data(), t.o, t.kh, t.kw, t.c, t.groups, {t.stride, t.stride}, {t.pad, t.pad},
                                    {t.dil, t.dil}, t.pad_value);
    const std::vector<std::uint64_t> x = random_bits(t.n * t.h * t.w, t.c);
    const auto shape = conv.output_shape(t.h, t.w);
    const std::int64_t pixels = t.n * shape[0] * shape[1];
    std::vector<std::int32_t> want(static_cast<std::size_t>(pixels * t.o));
    conv.run(x.data(), t.n, t.h, t.w, want.data(), 1, Isa::scalar);
    std::vector<std::int32_t> thresh(static_cast<std::size_t>(t.o));
    std::vector<std::int8_t> flip(static_cast<std::size_t>(t.o));
    for (std::int64_t o = 0; o < t.o; ++o) {
      thresh[o] = want[uniform(0, pixels - 1) * t.o + o];
      flip[o] = uniform(0, 1) ? 1 : -1;
    }
    std::vector<std::uint64_t> bits_want(static_cast<std::size_t>(pixels * onebit::words_for(t.o)));
    conv.run_threshold(x.data(), t.n, t.h, t.w, thresh.data(), flip.data(), bits_want.data(), 1, Isa::scalar);
    for (int threads : {1, 3}) {
      const std::string what = " o=" + std::to_string(t.o) + " c=" + std::to_string(t.c) + " k=" +
                               std::to_string(t.kh) + "x" + std::to_string(t.kw) + " pad_value=" +
                               std::to_string(t.pad_value) + " threads=" + std::to_string(threads);
      std::vector<std::int32_t> y(want.size(), -7);
      conv.run(x.data(), t.n, t.h, t.w, y.data(), threads, Isa::neon);
      expect_equal(y, want, "BinaryConv2d.run" + what);
      std::vector<std::uint64_t> bits(bits_want.size(), ~0ull);
      conv.run_threshold(x.data(), t.n, t.h, t.w, thresh.data(), flip.data(), bits.data(), threads, Isa::neon);
      expect_equal(bits, bits_want, "BinaryConv2d.run_threshold" + what);
      // The fused pool against bmaxpool2d of the thresholded bits (scalar).
      const std::vector<std::uint64_t> mask = random_bits(1, t.o);
      const onebit::BinaryConv2d::BitPool pool{{2, 3}, {2, 1}, {1, 1}, mask.data()};
      const auto ps = onebit::bmaxpool2d_output_shape(shape[0], shape[1], pool.kernel, pool.stride, pool.padding);
      std::vector<std::uint64_t> pooled_want(static_cast<std::size_t>(t.n * ps[0] * ps[1] * onebit::words_for(t.o)));
      onebit::bmaxpool2d(bits_want.data(), t.n, shape[0], shape[1], t.o, pool.kernel, pool.stride, pool.padding,
                         mask.data(), pooled_want.data(), 1, Isa::scalar);
      std::vector<std::uint64_t> pooled(pooled_want.size(), ~0ull);
      conv.run_threshold(x.data(), t.n, t.h, t.w, thresh.data(), flip.data(), pooled.data(), threads, Isa::neon,
                         &pool);
      expect_equal(pooled, pooled_want, "BinaryConv2d.run_threshold with a fused pool" + what);
      // The float stage with every fused step (residual, RPReLU, shifted signs): NEON
      // against the scalar ISA (the packer differs).
      const auto o = static_cast<std::size_t>(t.o);
      const std::vector<float> scale = random_floats(o), bias = random_floats(o), si = random_floats(o),
                               sl = random_floats(o), so = random_floats(o), sh = random_floats(o),
                               residual = random_floats(want.size());
      std::vector<float> fwant(want.size()), fgot(want.size(), -7.0f);
      std::vector<std::uint64_t> swant(bits_want.size()), sgot(bits_want.size(), ~0ull);
      onebit::FloatStage stage{scale.data(), bias.data(), 1, nullptr, nullptr};
      stage.residual = residual.data();
      stage.prelu_shift_in = si.data();
      stage.prelu_slope = sl.data();
      stage.prelu_shift_out = so.data();
      stage.sign_shift = sh.data();
      stage.signs = swant.data();
      conv.run_float(x.data(), t.n, t.h, t.w, stage, fwant.data(), 1, Isa::scalar);
      stage.signs = sgot.data();
      conv.run_float(x.data(), t.n, t.h, t.w, stage, fgot.data(), threads, Isa::neon);
      expect_equal(fgot, fwant, "BinaryConv2d.run_float with fused steps" + what);
      expect_equal(sgot, swant, "BinaryConv2d.run_float's fused signs" + what);
    }
  }
}

void check_channel_ops() {
  // The packer inside pack_shifted_parts (NEON) against the scalar one, parts not word-aligned.
  const std::int64_t rows = 37;
  const std::int64_t widths[3] = {70, 64, 33};
  std::vector<std::vector<float>> parts;
  std::vector<const float*> ptrs;
  for (std::int64_t c : widths) {
    parts.push_back(random_floats(static_cast<std::size_t>(rows * c)));
    ptrs.push_back(parts.back().data());
  }
  const std::vector<float> scale = random_floats(167), bias = random_floats(167), shift = random_floats(167);
  std::vector<std::uint64_t> want(static_cast<std::size_t>(rows * onebit::words_for(167)));
  onebit::pack_shifted_parts(ptrs.data(), widths, 3, rows, scale.data(), bias.data(), shift.data(), want.data(), 1,
                             Isa::scalar);
  for (int threads : {1, 3}) {
    std::vector<std::uint64_t> got(want.size(), ~0ull);
    onebit::pack_shifted_parts(ptrs.data(), widths, 3, rows, scale.data(), bias.data(), shift.data(), got.data(),
                               threads, Isa::neon);
    expect_equal(got, want, "pack_shifted_parts threads=" + std::to_string(threads));
  }
}

void check_bmaxpool_and_fgemm_bw() {
  for (std::int64_t channels : {1, 64, 100, 300}) {
    const std::int64_t n = 2, h = 11, w = 9, words = onebit::words_for(channels);
    const std::vector<std::uint64_t> x = random_bits(n * h * w, channels), mask = random_bits(1, channels);
    const std::array<std::int64_t, 2> kernel{3, 2}, stride{2, 1}, padding{1, 1};
    const auto shape = onebit::bmaxpool2d_output_shape(h, w, kernel, stride, padding);
    std::vector<std::uint64_t> want(static_cast<std::size_t>(n * shape[0] * shape[1] * words));
    onebit::bmaxpool2d(x.data(), n, h, w, channels, kernel, stride, padding, mask.data(), want.data(), 1,
                       Isa::scalar);
    for (int threads : {1, 3}) {
      std::vector<std::uint64_t> got(want.size(), ~0ull);
      onebit::bmaxpool2d(x.data(), n, h, w, channels, kernel, stride, padding, mask.data(), got.data(), threads,
                         Isa::neon);
      expect_equal(got, want,
                   "bmaxpool2d channels=" + std::to_string(channels) + " threads=" + std::to_string(threads));
    }
  }
  for (const auto& s : {std::array<std::int64_t, 3>{1, 10, 70}, {7, 33, 300}, {20, 100, 784}}) {
    const std::int64_t m = s[0], n = s[1], k = s[2];
    const std::vector<std::uint64_t> w = random_bits(n, k);
    const onebit::BinaryWeightsF32 bw(w.data(), n, k);
    const std::vector<float> x = random_floats(static_cast<std::size_t>(m * k));
    std::vector<float> want(static_cast<std::size_t>(m * n));
    onebit::fgemm_bw(x.data(), m, bw, want.data(), 1, Isa::scalar);
    for (int threads : {1, 3}) {
      std::vector<float> got(want.size(), 7.0f);
      onebit::fgemm_bw(x.data(), m, bw, got.data(), threads, Isa::neon);
      expect_equal(got, want, "fgemm_bw m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" +
                                  std::to_string(k) + " threads=" + std::to_string(threads));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool dispatch_only = argc > 1 && std::string(argv[1]) == "--dispatch";
  const int shapes = argc > 1 && !dispatch_only ? std::atoi(argv[1]) : 60;
  try {
    check_dispatch();
    if (dispatch_only) {
      std::printf("neon_check --dispatch: %d checks, %d failed\n", checks, failures);
      return failures > 0 ? 1 : 0;
    }
    check_bitpack();
    check_ukernel();
    check_bgemm(shapes);
    check_bconv();
    check_bmaxpool_and_fgemm_bw();
    check_channel_ops();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "neon_check: exception: %s\n", e.what());
    return 1;
  }
  if (failures > 0) {
    std::fprintf(stderr, "neon_check: %d of %d checks FAILED\n", failures, checks);
    return 1;
  }
  std::printf("neon_check: %d checks passed\n", checks);
  return 0;
}
