// AVX2 bgemm micro-kernel: XOR + nibble-LUT popcount (vpshufb) on 256-bit vectors,
// byte accumulators flushed with vpsadbw.
//
// A ymm holds one K word of 4 weight rows (the packed tile gives 32 rows per K word, i.e.
// 8 ymm groups). The classic per-word sequence t = a ^ w; lut[t & 15] + lut[(t >> 4) & 15]
// costs 8 uops. Splitting into nibbles commutes with XOR, so this kernel splits each
// activation word once per call (a_lo = a & 0x0f.., a_hi = (a >> 4) & 0x0f.., kept in a
// small stack panel) and each weight ymm once per K word (amortised over MR rows); then
// per (row, 4-weight-row group) and K word it does only
//     acc += pshufb(lut, bcast(a_lo) ^ w_lo) ; acc += pshufb(lut, bcast(a_hi) ^ w_hi)
// = 2 vpxor + 2 vpshufb + 2 vpaddb (the broadcasts are load-port-only uops). Byte lanes
// count at most 8 per word, so they are flushed into 64-bit sums (vpsadbw) every 31 words.
// The peak loop below measures exactly that 6-uop mix, register-resident.
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>

#include "bgemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX2 __attribute__((target("avx2,popcnt")))

namespace onebit {
namespace {

constexpr int kMR = 8;                // 8 byte accumulators + 2 LUT/mask + w_lo/w_hi + temps
constexpr std::int64_t kChunk = 128;  // K words of split activations held on the stack
constexpr std::int64_t kFlush = 31;   // 31 * 8 = 248 < 256: byte lanes cannot overflow

template <int MR>
ONEBIT_TARGET_AVX2 void ukernel_mr(std::int64_t nr, std::int64_t kc, const std::uint64_t* a,
                                   std::int64_t lda, const std::uint64_t* wt, std::int32_t* c,
                                   std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  alignas(32) std::uint64_t lo[MR][kChunk];
  alignas(32) std::uint64_t hi[MR][kChunk];
  alignas(32) std::int64_t sums[MR][kBgemmNR];
  for (int i = 0; i < MR; ++i)
    for (std::int64_t j = 0; j < kBgemmNR; ++j) sums[i][j] = 0;

  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  const std::int64_t groups = (nr + 3) / 4;
  constexpr std::uint64_t kLow = 0x0f0f0f0f0f0f0f0full;

  for (std::int64_t k0 = 0; k0 < kc; k0 += kChunk) {
    const std::int64_t kn = kc - k0 < kChunk ? kc - k0 : kChunk;
    for (int i = 0; i < MR; ++i) {
      const std::uint64_t* row = a + i * lda + k0;
      for (std::int64_t q = 0; q < kn; ++q) {
        lo[i][q] = row[q] & kLow;
        hi[i][q] = (row[q] >> 4) & kLow;
      }
    }
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::uint64_t* wg = wt + k0 * kBgemmNR + 4 * g;
      for (std::int64_t q0 = 0; q0 < kn; q0 += kFlush) {
        const std::int64_t q1 = q0 + kFlush < kn ? q0 + kFlush : kn;
        __m256i acc[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) acc[i] = _mm256_setzero_si256();
        for (std::int64_t q = q0; q < q1; ++q) {
          const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * kBgemmNR));
          const __m256i wl = _mm256_and_si256(w, low4);
          const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
#pragma GCC unroll 8
          for (int i = 0; i < MR; ++i) {
            const __m256i bl = _mm256_set1_epi64x(static_cast<long long>(lo[i][q]));
            const __m256i bh = _mm256_set1_epi64x(static_cast<long long>(hi[i][q]));
            acc[i] = _mm256_add_epi8(acc[i], _mm256_shuffle_epi8(lut, _mm256_xor_si256(bl, wl)));
            acc[i] = _mm256_add_epi8(acc[i], _mm256_shuffle_epi8(lut, _mm256_xor_si256(bh, wh)));
          }
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
          __m256i* s = reinterpret_cast<__m256i*>(&sums[i][4 * g]);
          _mm256_store_si256(s, _mm256_add_epi64(_mm256_load_si256(s), _mm256_sad_epu8(acc[i], zero)));
        }
      }
    }
  }

  for (int i = 0; i < MR; ++i) {
    std::int32_t* ci = c + i * ldc;
    for (std::int64_t j = 0; j < nr; ++j) {
      std::int64_t s = sums[i][j];
      if (!(flags & kBgemmFirst)) s += ci[j];
      ci[j] = static_cast<std::int32_t>((flags & kBgemmLast) ? k_bits - 2 * s : s);
    }
  }
}

ONEBIT_TARGET_AVX2 void ukernel_avx2(std::int64_t mr, std::int64_t nr, std::int64_t kc,
                                     const std::uint64_t* a, std::int64_t lda, const std::uint64_t* wt,
                                     std::int32_t* c, std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  switch (mr) {
    case 1: ukernel_mr<1>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 2: ukernel_mr<2>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 3: ukernel_mr<3>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 4: ukernel_mr<4>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 5: ukernel_mr<5>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 6: ukernel_mr<6>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 7: ukernel_mr<7>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    default: ukernel_mr<8>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
  }
}

ONEBIT_TARGET_AVX2 void threshold_avx2(std::int64_t mr, std::int64_t nr, const std::int32_t* c,
                                       std::int64_t ldc, const std::int32_t* thresh, std::uint32_t neg,
                                       std::uint32_t* out, std::int64_t ldo) {
  // Column masks and thresholds for the 4 groups of 8 columns.
  __m256i t[4], valid[4];
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int g = 0; g < 4; ++g) {
    valid[g] = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(nr - 8 * g)), lanes);
    t[g] = _mm256_maskload_epi32(thresh + 8 * g, valid[g]);
  }
  const std::uint32_t keep = nr >= 32 ? 0xffffffffu : (1u << nr) - 1u;
  for (std::int64_t i = 0; i < mr; ++i) {
    std::uint32_t lt = 0, gt = 0;
    for (int g = 0; g < 4; ++g) {
      const __m256i v = _mm256_maskload_epi32(c + i * ldc + 8 * g, valid[g]);
      lt |= static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(t[g], v))))
            << (8 * g);
      gt |= static_cast<std::uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(v, t[g]))))
            << (8 * g);
    }
    out[i * ldo] = ((lt & ~neg) | (gt & neg)) & keep;
  }
}

// Peak binary MACs/s of the AVX2 kernel's instruction mix: per 256 bit pairs, 2 VPXOR +
// 2 VPSHUFB + 2 VPADDB (the split-nibble sequence above), register-resident, with the
// same vpsadbw flush every 31 words. 4 independent byte accumulators (2 "activation" x 2
// "weight" register pairs); the empty asm statements make the inputs opaque each
// iteration (no instruction) so nothing is hoisted. One iteration = 4 x 256 MACs.
ONEBIT_TARGET_AVX2 std::uint64_t peak_avx2(std::int64_t iters) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,  //
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  __m256i al0 = _mm256_set1_epi8(0x01), ah0 = _mm256_set1_epi8(0x02);
  __m256i al1 = _mm256_set1_epi8(0x03), ah1 = _mm256_set1_epi8(0x04);
  __m256i wl0 = _mm256_set1_epi8(0x05), wh0 = _mm256_set1_epi8(0x06);
  __m256i wl1 = _mm256_set1_epi8(0x07), wh1 = _mm256_set1_epi8(0x08);
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  const __m256i zero = _mm256_setzero_si256();
  std::int64_t done = 0;
  while (done < iters) {
    const std::int64_t n = iters - done < kFlush ? iters - done : kFlush;
    __m256i c0 = zero, c1 = zero, c2 = zero, c3 = zero;
    for (std::int64_t it = 0; it < n; ++it) {
      __asm__ volatile("" : "+x"(al0), "+x"(ah0), "+x"(al1), "+x"(ah1));
      __asm__ volatile("" : "+x"(wl0), "+x"(wh0), "+x"(wl1), "+x"(wh1));
      c0 = _mm256_add_epi8(c0, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al0, wl0)));
      c0 = _mm256_add_epi8(c0, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah0, wh0)));
      c1 = _mm256_add_epi8(c1, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al0, wl1)));
      c1 = _mm256_add_epi8(c1, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah0, wh1)));
      c2 = _mm256_add_epi8(c2, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al1, wl0)));
      c2 = _mm256_add_epi8(c2, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah1, wh0)));
      c3 = _mm256_add_epi8(c3, _mm256_shuffle_epi8(lut, _mm256_xor_si256(al1, wl1)));
      c3 = _mm256_add_epi8(c3, _mm256_shuffle_epi8(lut, _mm256_xor_si256(ah1, wh1)));
    }
    s0 = _mm256_add_epi64(s0, _mm256_sad_epu8(c0, zero));
    s1 = _mm256_add_epi64(s1, _mm256_sad_epu8(c1, zero));
    s2 = _mm256_add_epi64(s2, _mm256_sad_epu8(c2, zero));
    s3 = _mm256_add_epi64(s3, _mm256_sad_epu8(c3, zero));
    done += n;
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  volatile long long sink = _mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 3);
  (void)sink;
  return static_cast<std::uint64_t>(iters) * 4u * 256u;
}

}  // namespace

const BgemmKernels kBgemmAvx2 = {kMR, ukernel_avx2, threshold_avx2, peak_avx2,
                                 "2 vpxor + 2 vpshufb + 2 vpaddb per 256 bit pairs (+ vpsadbw / 31)", nullptr};

}  // namespace onebit

#else  // not x86

namespace onebit {
const BgemmKernels kBgemmAvx2 = {1, nullptr, nullptr, nullptr, "n/a", nullptr};
}  // namespace onebit

#endif
