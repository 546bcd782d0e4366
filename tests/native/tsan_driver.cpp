// ThreadSanitizer driver for the kernels and their thread pool (run by .ci/tsan).
//
// Compiled with -fsanitize=thread together with the kernel sources (no Python), it checks
// what the bindings allow: several caller threads at once (the GIL released), each asking
// the shared pool for up to 8 threads, on every ISA this CPU runs. For each kernel
// (parallel_run itself, bgemm, bgemm_threshold, BinaryConv2d::run and run_threshold,
// bmaxpool2d, fgemm_bw, FloatConv2d::run raw and fused with its pool and bit output,
// fpool2d, pack_rows_f32) and ISA, the single-threaded result of one caller is the
// reference; one caller then runs each with 2 and 8 threads (the pool to itself), then
// kCallers threads call the kernels in turn with 2, 3, 4 or 8 threads, sometimes after a
// pause long enough for the pool's workers to fall asleep, and every result must equal its
// reference byte for byte. Exit status 1 on a mismatch (or if no pool worker ever ran a
// task, which would leave the pool unexercised); a data race is reported by TSan, which
// then exits with its own status (see .ci/tsan).
//
// Usage: tsan_driver [rounds]   (rounds per caller thread, default 24)
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bconv.h"
#include "channel_ops.h"
#include "bgemm.h"
#include "bitpack.h"
#include "dispatch.h"
#include "fconv.h"
#include "fgemm_bw.h"
#include "threadpool.h"

namespace {

using onebit::Isa;

constexpr int kCallers = 4;
constexpr int kThreadCounts[] = {2, 3, 4, 8};

std::mt19937_64 rng(20261126);

// n packed rows of k bits each (random, tail bits 0).
std::vector<std::uint64_t> random_bits(std::int64_t n, std::int64_t k) {
  const std::int64_t words = onebit::words_for(k);
  std::vector<std::uint64_t> out(static_cast<std::size_t>(n * words));
  for (std::int64_t r = 0; r < n; ++r) {
    for (std::int64_t w = 0; w < words; ++w) {
      std::uint64_t v = rng();
      const std::int64_t valid = std::min<std::int64_t>(64, k - 64 * w);
      if (valid < 64) v &= (std::uint64_t{1} << valid) - 1;
      out[static_cast<std::size_t>(r * words + w)] = v;
    }
  }
  return out;
}

std::vector<float> random_floats(std::size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = normal(rng);
  return out;
}

// Tasks that pool workers (thread > 0) ran, over the whole run: the concurrency checked
// here needs them to take part.
std::atomic<long> worker_tasks{0};

// parallel_run on its own: every task writes its own slot once (a task run twice, or run
// while another thread writes the slot, is a race TSan sees); the result is the slots.
struct SlotJob {
  std::vector<std::uint64_t>* slots;
  static void task(void* ctx, std::int64_t t, int thread) {
    auto& s = *static_cast<SlotJob*>(ctx)->slots;
    std::uint64_t v = static_cast<std::uint64_t>(t) * 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 2000; ++i) v = v * 6364136223846793005ull + 1442695040888963407ull;  // some work
    s[static_cast<std::size_t>(t)] += v;  // read-modify-write: a second run of t changes the result
    if (thread > 0) worker_tasks.fetch_add(1, std::memory_order_relaxed);
  }
};

// One kernel call: writes its whole result into `out` (bytes), on `threads` threads.
using Kernel = std::function<void(Isa isa, int threads, std::vector<unsigned char>& out)>;

template <class T>
void store(const std::vector<T>& v, std::vector<unsigned char>& out) {
  out.resize(v.size() * sizeof(T));
  std::memcpy(out.data(), v.data(), out.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 24;

  // Sizes: big enough that every kernel splits its work over the threads it is given.
  // bgemm: 192 rows of K = 2000 bits against N = 400 weight rows (tail bits in both).
  const std::int64_t gm = 192, gn = 400, gk = 2000, gwords = onebit::words_for(gk);
  const auto ga = random_bits(gm, gk), gw = random_bits(gn, gk);
  const onebit::PackedWeights gpw(gw.data(), gn, gwords, gk);
  std::vector<std::int32_t> gthresh(static_cast<std::size_t>(gn));
  std::vector<std::int8_t> gsign(static_cast<std::size_t>(gn));
  for (std::int64_t j = 0; j < gn; ++j) {
    gthresh[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(rng() % 81) - 40;
    gsign[static_cast<std::size_t>(j)] = (rng() & 1) ? 1 : -1;
  }
  std::vector<float> gscale(static_cast<std::size_t>(gn)), gbias(static_cast<std::size_t>(gn));
  for (std::int64_t j = 0; j < gn; ++j) {
    gscale[static_cast<std::size_t>(j)] = static_cast<float>(rng() % 7) * 0.25f - 0.75f;
    gbias[static_cast<std::size_t>(j)] = static_cast<float>(rng() % 9) * 0.5f - 2.0f;
  }
  const onebit::FloatStage gstage{gscale.data(), gbias.data(), 1, nullptr, nullptr};

  // Binary 3x3 conv, zero padding (the per-border-pattern correction), 130 -> 160 channels
  // on 2 x 16 x 16; a 2x2/2 max-pool on 8 x 32 x 32 x 500 bits.
  const std::int64_t cn = 2, ch = 16, cw = 16, cc = 130, co = 160;
  const auto cx = random_bits(cn * ch * cw, cc);
  const auto cwt = random_bits(co * 9, cc);
  const onebit::BinaryConv2d conv(cwt.data(), co, 3, 3, cc, 1, {1, 1}, {1, 1}, {1, 1}, 0);
  std::vector<std::int32_t> cthresh(static_cast<std::size_t>(co));
  std::vector<std::int8_t> cflip(static_cast<std::size_t>(co));
  for (std::int64_t j = 0; j < co; ++j) {
    cthresh[static_cast<std::size_t>(j)] = static_cast<std::int32_t>(rng() % 41) - 20;
    cflip[static_cast<std::size_t>(j)] = (rng() & 1) ? 1 : -1;
  }
  const auto cmask = random_bits(1, co);
  const auto cscale = random_floats(static_cast<std::size_t>(co)), cbias = random_floats(static_cast<std::size_t>(co));
  const auto cresidual = random_floats(static_cast<std::size_t>(cn * ch * cw * co));
  const std::int64_t pn = 8, ph = 32, pw = 32, pc = 500;
  const auto px = random_bits(pn * ph * pw, pc);
  const auto pmask = random_bits(1, pc);

  // Float input x binary weights: 96 x 1000 floats against 300 rows.
  const std::int64_t fm = 96, fk = 1000, fn = 300;
  const auto fx = random_floats(static_cast<std::size_t>(fm * fk));
  const auto fw = random_bits(fn, fk);
  const onebit::BinaryWeightsF32 fbw(fw.data(), fn, fk);

  // Float 3x3 conv, 24 -> 80 channels on 2 x 16 x 16 (raw; and thresholded to bits with
  // a 2x2 max-pool fused); a float 2x2 average pool on 4 x 32 x 32 x 64.
  const std::int64_t vn = 2, vh = 16, vw = 16, vc = 24, vo = 80;
  const auto vx = random_floats(static_cast<std::size_t>(vn * vh * vw * vc));
  const auto vwt = random_floats(static_cast<std::size_t>(vo * 9 * vc));
  const auto vscale = random_floats(static_cast<std::size_t>(vo)), vbias = random_floats(static_cast<std::size_t>(vo));
  const onebit::FloatConv2d fconv(vwt.data(), vo, 3, 3, vc, 1, {1, 1}, {1, 1}, {1, 1}, 0.0f);
  const auto ax = random_floats(static_cast<std::size_t>(4 * 32 * 32 * 64));

  // Packing 1024 x 1000 floats.
  const std::int64_t kr = 1024, kc = 1000;
  const auto kx = random_floats(static_cast<std::size_t>(kr * kc));

  std::vector<std::pair<std::string, Kernel>> kernels = {
      {"parallel_run",
       [](Isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> slots(997, 0);
         SlotJob job{&slots};
         onebit::parallel_run(threads, static_cast<std::int64_t>(slots.size()), SlotJob::task, &job, 500.0);
         store(slots, out);
       }},
      {"bgemm",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::int32_t> c(static_cast<std::size_t>(gm * gn));
         onebit::bgemm(ga.data(), gm, gpw, c.data(), threads, isa);
         store(c, out);
       }},
      {"bgemm_threshold",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> c(static_cast<std::size_t>(gm * onebit::words_for(gn)));
         onebit::bgemm_threshold(ga.data(), gm, gpw, gthresh.data(), gsign.data(), c.data(), threads, isa);
         store(c, out);
       }},
      {"bgemm_float",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<float> c(static_cast<std::size_t>(gm * gn));
         onebit::bgemm_float(ga.data(), gm, gpw, gstage, c.data(), threads, isa);
         store(c, out);
       }},
      {"bconv",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::int32_t> y(static_cast<std::size_t>(cn * ch * cw * co));
         conv.run(cx.data(), cn, ch, cw, y.data(), threads, isa);
         store(y, out);
       }},
      {"bconv_threshold",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> y(static_cast<std::size_t>(cn * ch * cw * onebit::words_for(co)));
         conv.run_threshold(cx.data(), cn, ch, cw, cthresh.data(), cflip.data(), y.data(), threads, isa);
         store(y, out);
       }},
      {"channel_ops",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         const std::int64_t rows = cn * ch * cw, c = co;
         std::vector<float> y(static_cast<std::size_t>(rows * c));
         onebit::channel_prelu(cresidual.data(), rows, c, cbias.data(), cscale.data(), cbias.data(), y.data(), threads,
                               isa);
         const float* parts[2] = {cresidual.data(), y.data()};
         const std::int64_t widths[2] = {c, c};
         std::vector<std::uint64_t> bits(static_cast<std::size_t>(rows * onebit::words_for(2 * c)));
         onebit::pack_shifted_parts(parts, widths, 2, rows, nullptr, nullptr, nullptr, bits.data(), threads, isa);
         std::vector<unsigned char> b;
         store(bits, b);
         store(y, out);
         out.insert(out.end(), b.begin(), b.end());
       }},
      {"bconv_float_fused",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         const auto size = static_cast<std::size_t>(cn * ch * cw * co);
         std::vector<float> y(size);
         std::vector<std::uint64_t> signs(static_cast<std::size_t>(cn * ch * cw * onebit::words_for(co)));
         onebit::FloatStage stage{cscale.data(), cbias.data(), 2, nullptr, nullptr};
         stage.residual = cresidual.data();
         stage.prelu_shift_in = cbias.data();
         stage.prelu_slope = cscale.data();
         stage.prelu_shift_out = cbias.data();
         stage.signs = signs.data();
         conv.run_float(cx.data(), cn, ch, cw, stage, y.data(), threads, isa);
         std::vector<unsigned char> bits;
         store(signs, bits);
         store(y, out);
         out.insert(out.end(), bits.begin(), bits.end());
       }},
      {"bconv_threshold_pool",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         const onebit::BinaryConv2d::BitPool pool{{3, 3}, {2, 2}, {1, 1}, cmask.data()};
         const auto ps = onebit::bmaxpool2d_output_shape(ch, cw, pool.kernel, pool.stride, pool.padding);
         std::vector<std::uint64_t> y(static_cast<std::size_t>(cn * ps[0] * ps[1] * onebit::words_for(co)));
         conv.run_threshold(cx.data(), cn, ch, cw, cthresh.data(), cflip.data(), y.data(), threads, isa, &pool);
         store(y, out);
       }},
      {"bmaxpool2d",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> y(static_cast<std::size_t>(pn * (ph / 2) * (pw / 2) * onebit::words_for(pc)));
         onebit::bmaxpool2d(px.data(), pn, ph, pw, pc, {2, 2}, {2, 2}, {0, 0}, pmask.data(), y.data(), threads, isa);
         store(y, out);
       }},
      {"fgemm_bw",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<float> y(static_cast<std::size_t>(fm * fn));
         onebit::fgemm_bw(fx.data(), fm, fbw, y.data(), threads, isa);
         store(y, out);
       }},
      {"fconv",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<float> y(static_cast<std::size_t>(vn * vh * vw * vo));
         fconv.run(vx.data(), vn, vh, vw, onebit::FconvStage{}, onebit::FconvPool{}, y.data(), threads, isa);
         store(y, out);
       }},
      {"fconv_bits_pool",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> y(static_cast<std::size_t>(vn * (vh / 2) * (vw / 2) * onebit::words_for(vo)));
         onebit::FconvStage stage;
         stage.scale = vscale.data();
         stage.bias = vbias.data();
         stage.bits = true;
         onebit::FconvPool pool;
         pool.on = true;
         pool.kernel = {2, 2};
         pool.stride = {2, 2};
         fconv.run(vx.data(), vn, vh, vw, stage, pool, y.data(), threads, isa);
         store(y, out);
       }},
      {"fpool2d",
       [&](Isa, int threads, std::vector<unsigned char>& out) {
         std::vector<float> y(static_cast<std::size_t>(4 * 16 * 16 * 64));
         onebit::fpool2d(ax.data(), 4, 32, 32, 64, {2, 2}, {2, 2}, {0, 0}, true, y.data(), threads);
         store(y, out);
       }},
      {"pack_rows_f32",
       [&](Isa isa, int threads, std::vector<unsigned char>& out) {
         std::vector<std::uint64_t> y(static_cast<std::size_t>(kr * onebit::words_for(kc)));
         onebit::pack_rows_f32(kx.data(), kr, kc, y.data(), threads, isa);
         store(y, out);
       }},
  };

  const std::vector<Isa> isas = onebit::available_isas();
  // reference[kernel][isa]: one caller, one thread.
  std::vector<std::vector<std::vector<unsigned char>>> reference(kernels.size());
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    for (Isa isa : isas) {
      reference[k].emplace_back();
      kernels[k].second(isa, 1, reference[k].back());
    }
  }

  std::atomic<int> mismatches{0};
  std::atomic<long> calls{0};
  auto check = [&](std::size_t k, std::size_t i, int threads, const std::vector<unsigned char>& out, int caller) {
    calls.fetch_add(1, std::memory_order_relaxed);
    if (out == reference[k][i]) return;
    std::fprintf(stderr, "MISMATCH: %s isa=%s threads=%d caller=%d\n", kernels[k].first.c_str(),
                 onebit::isa_name(isas[i]), threads, caller);
    mismatches.fetch_add(1);
  };
  // One caller first: the pool uncontended, its workers taking part.
  {
    std::vector<unsigned char> out;
    for (std::size_t k = 0; k < kernels.size(); ++k) {
      for (std::size_t i = 0; i < isas.size(); ++i) {
        for (int threads : {2, 8}) {
          kernels[k].second(isas[i], threads, out);
          check(k, i, threads, out, -1);
        }
      }
    }
  }
  // Then kCallers at once.
  std::vector<std::thread> callers;
  for (int caller = 0; caller < kCallers; ++caller) {
    callers.emplace_back([&, caller] {
      std::vector<unsigned char> out;
      for (int r = 0; r < rounds; ++r) {
        const int step = caller * 7 + r;
        const std::size_t k = static_cast<std::size_t>(step) % kernels.size();
        const std::size_t i = static_cast<std::size_t>(step / 3) % isas.size();
        const int threads = kThreadCounts[static_cast<std::size_t>(step) % 4];
        // Now and then the pool's workers go to sleep first (spin and yield phases end
        // after 200 us): the wake-up path, not only the spinning one.
        if (r % 5 == caller % 5) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        kernels[k].second(isas[i], threads, out);
        check(k, i, threads, out, caller);
      }
    });
  }
  for (auto& t : callers) t.join();

  // Every ISA gives the scalar path's bytes (the integer kernels, and the float conv's
  // fixed FMA chain: csrc/fconv.h), except fgemm_bw (documented last-bit differences).
  for (std::size_t k = 0; k < kernels.size(); ++k) {
    if (kernels[k].first == "fgemm_bw") continue;
    for (std::size_t i = 1; i < isas.size(); ++i) {
      if (reference[k][i] != reference[k][0]) {
        std::fprintf(stderr, "MISMATCH: %s isa=%s differs from scalar\n", kernels[k].first.c_str(),
                     onebit::isa_name(isas[i]));
        mismatches.fetch_add(1);
      }
    }
  }
  std::printf("tsan_driver: %ld threaded kernel calls (one caller, then %d at once) on ISAs", calls.load(), kCallers);
  for (Isa isa : isas) std::printf(" %s", onebit::isa_name(isa));
  std::printf(": %d mismatches, %ld parallel_run tasks run by pool workers\n", mismatches.load(),
              worker_tasks.load());
  if (worker_tasks.load() == 0) {
    std::fprintf(stderr, "no pool worker ran a task: the concurrency was not exercised\n");
    return 1;
  }
  return mismatches.load() == 0 ? 0 : 1;
}
