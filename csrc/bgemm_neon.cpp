// NEON (AArch64) bgemm micro-kernel: XOR + CNT on 128-bit vectors, byte accumulators
// flushed into 64-bit sums with pairwise widening adds.
//
// A q register holds one K word of 2 weight rows (the packed tile gives 32 rows per K word,
// i.e. 16 q registers). The kernel walks the tile in groups of 8 weight rows (4 q
// registers, one 64-byte run per K word) and, for each K word, broadcasts one activation
// word per row (ld1r) and for each of the MR x 4 (row, register) pairs does
//     acc[i][v] += cnt(bcast(a[i][k]) ^ w[v])       (eor, cnt, add: 3 instructions)
// so byte b of acc[i][v] counts the differing bits of byte b of the pair's words. A byte
// gains at most 8 per word, so the accumulators are flushed every 31 words (31 * 8 = 248
// < 256) into 64-bit sums: uaddlp (8 -> 16 bits), uaddlp (16 -> 32), uadalp (32 -> 64,
// accumulating), after which lane l of the sum of acc[i][v] is the running popcount of
// activation row i against weight row 2v + l of the group. MR = 4: 16 accumulators,
// 4 weight and a few broadcast registers of the 32.
//
// NEON is part of the AArch64 baseline, so no target attribute is needed; this unit is
// built on AArch64 only (CMakeLists.txt). Everything is TU-local.
#include <cstdint>

#include "bgemm.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace onebit {
namespace {

constexpr int kMR = 4;
constexpr int kVecs = 4;                         // q registers per group of weight rows
constexpr std::int64_t kGroupRows = 2 * kVecs;   // weight rows per group
constexpr std::int64_t kFlush = 31;              // 31 * 8 = 248 < 256: bytes cannot overflow

// The 64-bit sums of 16 byte counts: lane l = sum of bytes 8 l .. 8 l + 7, added to s.
inline uint64x2_t flush(uint64x2_t s, uint8x16_t acc) {
  return vpadalq_u32(s, vpaddlq_u16(vpaddlq_u8(acc)));
}

template <int MR>
void ukernel_mr(std::int64_t nr, std::int64_t kc, const std::uint64_t* a, std::int64_t lda,
                const std::uint64_t* wt, std::int32_t* c, std::int64_t ldc, std::int32_t k_bits,
                unsigned flags) {
  // The tile is kBgemmNR rows wide whatever nr is (padded rows are 0), so whole groups
  // are read; only the nr valid columns are written.
  const std::int64_t groups = (nr + kGroupRows - 1) / kGroupRows;
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::uint64_t* wg = wt + kGroupRows * g;
    alignas(16) std::uint64_t sums[MR][kGroupRows] = {};
    for (std::int64_t q0 = 0; q0 < kc; q0 += kFlush) {
      const std::int64_t q1 = q0 + kFlush < kc ? q0 + kFlush : kc;
      uint8x16_t acc[MR][kVecs];
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) acc[i][v] = vdupq_n_u8(0);
      }
      for (std::int64_t q = q0; q < q1; ++q) {
        const std::uint64_t* wq = wg + q * kBgemmNR;
        uint64x2_t w[kVecs];
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) w[v] = vld1q_u64(wq + 2 * v);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const uint64x2_t ai = vld1q_dup_u64(a + i * lda + q);
#pragma GCC unroll 4
          for (int v = 0; v < kVecs; ++v) {
            acc[i][v] = vaddq_u8(acc[i][v], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(ai, w[v]))));
          }
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) {
          std::uint64_t* s = &sums[i][2 * v];
          vst1q_u64(s, flush(vld1q_u64(s), acc[i][v]));
        }
      }
    }
    const std::int64_t j0 = kGroupRows * g;
    const std::int64_t cols = nr - j0 < kGroupRows ? nr - j0 : kGroupRows;
    for (int i = 0; i < MR; ++i) {
      std::int32_t* ci = c + i * ldc + j0;
      for (std::int64_t j = 0; j < cols; ++j) {
        std::int64_t s = static_cast<std::int64_t>(sums[i][j]);
        if (!(flags & kBgemmFirst)) s += ci[j];
        ci[j] = static_cast<std::int32_t>((flags & kBgemmLast) ? k_bits - 2 * s : s);
      }
    }
  }
}

void ukernel_neon(std::int64_t mr, std::int64_t nr, std::int64_t kc, const std::uint64_t* a,
                  std::int64_t lda, const std::uint64_t* wt, std::int32_t* c, std::int64_t ldc,
                  std::int32_t k_bits, unsigned flags) {
  switch (mr) {
    case 1: ukernel_mr<1>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 2: ukernel_mr<2>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 3: ukernel_mr<3>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    default: ukernel_mr<4>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
  }
}

// Bits of the 4 lanes of a compare mask (all ones or 0): lane l -> bit l.
inline std::uint32_t lane_bits(uint32x4_t mask) {
  const uint32x4_t weights = {1u, 2u, 4u, 8u};
  return vaddvq_u32(vandq_u32(mask, weights));
}

void threshold_neon(std::int64_t mr, std::int64_t nr, const std::int32_t* c, std::int64_t ldc,
                    const std::int32_t* thresh, std::uint32_t neg, std::uint32_t* out, std::int64_t ldo) {
  // thresh[j] and c[., j] exist for j < nr only: a partial tile goes through padded copies.
  alignas(16) std::int32_t t[kBgemmNR] = {};
  alignas(16) std::int32_t row[kBgemmNR] = {};
  for (std::int64_t j = 0; j < nr; ++j) t[j] = thresh[j];
  const std::int64_t groups = (nr + 3) / 4;
  const std::uint32_t keep = nr >= 32 ? 0xffffffffu : (1u << nr) - 1u;
  for (std::int64_t i = 0; i < mr; ++i) {
    const std::int32_t* ci = c + i * ldc;
    if (nr < kBgemmNR) {
      for (std::int64_t j = 0; j < nr; ++j) row[j] = ci[j];
      ci = row;
    }
    std::uint32_t lt = 0, gt = 0;
    for (std::int64_t g = 0; g < groups; ++g) {
      const int32x4_t v = vld1q_s32(ci + 4 * g), tg = vld1q_s32(t + 4 * g);
      lt |= lane_bits(vcltq_s32(v, tg)) << (4 * g);
      gt |= lane_bits(vcgtq_s32(v, tg)) << (4 * g);
    }
    out[i * ldo] = ((lt & ~neg) | (gt & neg)) & keep;
  }
}

// Peak binary MACs/s of the kernel's instruction mix: per 128 bit pairs, eor + cnt + add
// (the sequence above), register-resident, with the same widening flush every 31 words.
// 8 independent byte accumulators (2 "activation" x 4 "weight" registers); the empty asm
// statements make the inputs opaque each iteration (no instruction) so nothing is hoisted.
// One iteration = 8 x 128 MACs.
std::uint64_t peak_neon(std::int64_t iters) {
  uint64x2_t a0 = vdupq_n_u64(0x0123456789abcdefull), a1 = vdupq_n_u64(0xfedcba9876543210ull);
  uint64x2_t w0 = vdupq_n_u64(0x0f0f0f0f0f0f0f0full), w1 = vdupq_n_u64(0x3333333333333333ull);
  uint64x2_t w2 = vdupq_n_u64(0x5555555555555555ull), w3 = vdupq_n_u64(0x00ff00ff00ff00ffull);
  uint64x2_t s[8];
  for (auto& x : s) x = vdupq_n_u64(0);
  std::int64_t done = 0;
  while (done < iters) {
    const std::int64_t n = iters - done < kFlush ? iters - done : kFlush;
    uint8x16_t c[8];
    for (auto& x : c) x = vdupq_n_u8(0);
    for (std::int64_t it = 0; it < n; ++it) {
      __asm__ volatile("" : "+w"(a0), "+w"(a1), "+w"(w0), "+w"(w1), "+w"(w2), "+w"(w3));
      c[0] = vaddq_u8(c[0], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a0, w0))));
      c[1] = vaddq_u8(c[1], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a0, w1))));
      c[2] = vaddq_u8(c[2], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a0, w2))));
      c[3] = vaddq_u8(c[3], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a0, w3))));
      c[4] = vaddq_u8(c[4], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a1, w0))));
      c[5] = vaddq_u8(c[5], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a1, w1))));
      c[6] = vaddq_u8(c[6], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a1, w2))));
      c[7] = vaddq_u8(c[7], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(a1, w3))));
    }
    for (int k = 0; k < 8; ++k) s[k] = flush(s[k], c[k]);
    done += n;
  }
  uint64x2_t total = s[0];
  for (int k = 1; k < 8; ++k) total = vaddq_u64(total, s[k]);
  volatile std::uint64_t sink = vgetq_lane_u64(total, 0) + vgetq_lane_u64(total, 1);
  (void)sink;
  return static_cast<std::uint64_t>(iters) * 8u * 128u;
}

}  // namespace

const BgemmKernels kBgemmNeon = {kMR, ukernel_neon, threshold_neon, peak_neon,
                                 "eor + cnt + add per 128 bit pairs (+ uaddlp, uaddlp, uadalp / 31)", nullptr};

}  // namespace onebit

#else  // AArch64 without Advanced SIMD

namespace onebit {
const BgemmKernels kBgemmNeon = {1, nullptr, nullptr, nullptr, "n/a", nullptr};
}  // namespace onebit

#endif
