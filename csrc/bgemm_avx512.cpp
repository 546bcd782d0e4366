// AVX-512 bgemm micro-kernel: XOR + VPOPCNTQ + VPADDQ on 512-bit vectors.
//
// Register blocking: the packed weight tile gives 32 weight rows per K word as 4 zmm
// (8 rows each, one uint64 lane per row). For each K word the kernel loads those 4 zmm
// once, broadcasts one activation word per row (vpbroadcastq from memory: a load-port
// uop), and for each of the MR x 4 (row, zmm) pairs does
//     acc[i][v] += popcnt(bcast(a[i][k]) ^ w[v])        (vpxorq, vpopcntq, vpaddq)
// so each lane of acc[i][v] is the running popcount of one (activation row, weight row)
// pair: no horizontal reduction at the end, the 8 lanes are 8 outputs. 3 vector uops
// per 512 bit pairs is the floor for this instruction set (VPOPCNTQ runs on one port,
// the XOR and ADD on two; a Harley-Seal CSA tree per pair costs 2 ternlogs per word it
// removes from the popcount+add stream, so it does not lower the count), which is what
// the peak loop below measures.
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>

#include "bgemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vpopcntdq")))

namespace onebit {
namespace {

constexpr int kMR = 6;  // 6 x 4 = 24 zmm accumulators + 4 weight zmm + broadcast/temps

// The micro-tile's epilogue: the MR x 4 accumulators (8 outputs each) into c, as bgemm.h says.
template <int MR>
ONEBIT_TARGET_AVX512 inline void store_acc(const __m512i (&acc)[MR][4], std::int64_t nr, std::int32_t* c,
                                           std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  const __m512i kv = _mm512_set1_epi64(k_bits);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      const std::int64_t left = nr - 8 * v;
      if (left <= 0) break;
      const __mmask8 mask = left >= 8 ? static_cast<__mmask8>(0xff) : static_cast<__mmask8>((1u << left) - 1u);
      std::int32_t* dst = c + i * ldc + 8 * v;
      __m512i s = acc[i][v];
      if (!(flags & kBgemmFirst)) {
        const __m256i prev = _mm512_castsi512_si256(_mm512_maskz_loadu_epi32(mask, dst));
        s = _mm512_add_epi64(s, _mm512_cvtepi32_epi64(prev));
      }
      if (flags & kBgemmLast) s = _mm512_sub_epi64(kv, _mm512_add_epi64(s, s));
      _mm512_mask_cvtepi64_storeu_epi32(dst, mask, s);
    }
  }
}

// The K loop of a micro-tile: kc words of each of the MR rows against the tile's 32 weight
// rows, into the MR x 4 accumulators (inlined into both kernels: they stay in registers).
template <int MR>
ONEBIT_TARGET_AVX512 __attribute__((always_inline)) inline void accumulate(__m512i (&acc)[MR][4],
                                                                          const std::uint64_t* const (&rows)[MR],
                                                                          std::int64_t kc, const std::uint64_t* wt) {
  for (std::int64_t q = 0; q < kc; ++q) {
    const std::uint64_t* wq = wt + q * kBgemmNR;
    const __m512i w0 = _mm512_load_si512(wq);
    const __m512i w1 = _mm512_load_si512(wq + 8);
    const __m512i w2 = _mm512_load_si512(wq + 16);
    const __m512i w3 = _mm512_load_si512(wq + 24);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512i b = _mm512_set1_epi64(static_cast<long long>(rows[i][q]));
      acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(b, w0)));
      acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(b, w1)));
      acc[i][2] = _mm512_add_epi64(acc[i][2], _mm512_popcnt_epi64(_mm512_xor_si512(b, w2)));
      acc[i][3] = _mm512_add_epi64(acc[i][3], _mm512_popcnt_epi64(_mm512_xor_si512(b, w3)));
    }
  }
}

template <int MR>
ONEBIT_TARGET_AVX512 void ukernel_mr(std::int64_t nr, std::int64_t kc, const std::uint64_t* a,
                                     std::int64_t lda, const std::uint64_t* wt, std::int32_t* c,
                                     std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  __m512i acc[MR][4];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  const std::uint64_t* rows[MR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) rows[i] = a + i * lda;
  accumulate<MR>(acc, rows, kc, wt);
  store_acc<MR>(acc, nr, c, ldc, k_bits, flags);
}

// The implicit-im2col kernel (bgemm.h): the same register block, the K loop walking the
// segments (a conv's kernel rows) of MR pixels pix words apart instead of copied rows.
template <int MR>
ONEBIT_TARGET_AVX512 void ukernel_seg_mr(std::int64_t nr, std::int64_t nseg, const std::uint64_t* const* seg,
                                         std::int64_t seg_words, std::int64_t pix, const std::uint64_t* wt,
                                         std::int32_t* c, std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  __m512i acc[MR][4];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_si512();
  }
  for (std::int64_t q = 0; q < nseg; ++q) {
    const std::uint64_t* rows[MR];
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) rows[i] = seg[q] + i * pix;
    accumulate<MR>(acc, rows, seg_words, wt + q * seg_words * kBgemmNR);
  }
  store_acc<MR>(acc, nr, c, ldc, k_bits, flags);
}

ONEBIT_TARGET_AVX512 void ukernel_seg_avx512(std::int64_t mr, std::int64_t nr, std::int64_t nseg,
                                             const std::uint64_t* const* seg, std::int64_t seg_words,
                                             std::int64_t pix, const std::uint64_t* wt, std::int32_t* c,
                                             std::int64_t ldc, std::int32_t k_bits, unsigned flags) {
  switch (mr) {
    case 1: ukernel_seg_mr<1>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
    case 2: ukernel_seg_mr<2>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
    case 3: ukernel_seg_mr<3>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
    case 4: ukernel_seg_mr<4>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
    case 5: ukernel_seg_mr<5>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
    default: ukernel_seg_mr<6>(nr, nseg, seg, seg_words, pix, wt, c, ldc, k_bits, flags); break;
  }
}

ONEBIT_TARGET_AVX512 void ukernel_avx512(std::int64_t mr, std::int64_t nr, std::int64_t kc,
                                         const std::uint64_t* a, std::int64_t lda, const std::uint64_t* wt,
                                         std::int32_t* c, std::int64_t ldc, std::int32_t k_bits,
                                         unsigned flags) {
  switch (mr) {
    case 1: ukernel_mr<1>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 2: ukernel_mr<2>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 3: ukernel_mr<3>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 4: ukernel_mr<4>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    case 5: ukernel_mr<5>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
    default: ukernel_mr<6>(nr, kc, a, lda, wt, c, ldc, k_bits, flags); break;
  }
}

ONEBIT_TARGET_AVX512 void threshold_avx512(std::int64_t mr, std::int64_t nr, const std::int32_t* c,
                                           std::int64_t ldc, const std::int32_t* thresh, std::uint32_t neg,
                                           std::uint32_t* out, std::int64_t ldo) {
  const __mmask16 m0 = nr >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << nr) - 1u);
  const __mmask16 m1 = nr >= 32   ? static_cast<__mmask16>(0xffff)
                       : nr <= 16 ? static_cast<__mmask16>(0)
                                  : static_cast<__mmask16>((1u << (nr - 16)) - 1u);
  const __m512i t0 = _mm512_maskz_loadu_epi32(m0, thresh);
  const __m512i t1 = _mm512_maskz_loadu_epi32(m1, thresh + 16);
  const __mmask16 n0 = static_cast<__mmask16>(neg & 0xffffu), n1 = static_cast<__mmask16>(neg >> 16);
  for (std::int64_t i = 0; i < mr; ++i) {
    const __m512i v0 = _mm512_maskz_loadu_epi32(m0, c + i * ldc);
    const __m512i v1 = _mm512_maskz_loadu_epi32(m1, c + i * ldc + 16);
    // s = +1: bit where c < t; s = -1: bit where c > t.
    const __mmask16 b0 = static_cast<__mmask16>((_mm512_mask_cmplt_epi32_mask(m0 & ~n0, v0, t0)) |
                                                (_mm512_mask_cmpgt_epi32_mask(m0 & n0, v0, t0)));
    const __mmask16 b1 = static_cast<__mmask16>((_mm512_mask_cmplt_epi32_mask(m1 & ~n1, v1, t1)) |
                                                (_mm512_mask_cmpgt_epi32_mask(m1 & n1, v1, t1)));
    out[i * ldo] = static_cast<std::uint32_t>(b0) | (static_cast<std::uint32_t>(b1) << 16);
  }
}

// Peak binary MACs/s of this instruction set: a register-resident loop doing, per
// 512-bit word pair, exactly what the micro-kernel's inner loop must do: one VPXORQ,
// one VPOPCNTQ, one VPADDQ into an accumulator (16 independent accumulators, 4 "activation"
// x 4 "weight" registers, like a 4 x 4 register block with loads taken out). The empty asm
// statements make the inputs opaque each iteration so the compiler cannot hoist the XOR
// and popcount out of the loop; they emit no instruction. One iteration = 16 x 512 MACs.
ONEBIT_TARGET_AVX512 std::uint64_t peak_avx512(std::int64_t iters) {
  __m512i a0 = _mm512_set1_epi64(0x0123456789abcdefLL), a1 = _mm512_set1_epi64(0x1111222233334444LL);
  __m512i a2 = _mm512_set1_epi64(0x5555aaaa5555aaaaLL), a3 = _mm512_set1_epi64(0x00ff00ff00ff00ffLL);
  __m512i w0 = _mm512_set1_epi64(0x7777777777777777LL), w1 = _mm512_set1_epi64(0x0f0f0f0f0f0f0f0fLL);
  __m512i w2 = _mm512_set1_epi64(0x3333333333333333LL), w3 = _mm512_set1_epi64(0x123456789abcdef0LL);
  __m512i c[4][4];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) c[i][j] = _mm512_setzero_si512();
  for (std::int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3));
    __asm__ volatile("" : "+v"(w0), "+v"(w1), "+v"(w2), "+v"(w3));
    const __m512i as[4] = {a0, a1, a2, a3};
    const __m512i ws[4] = {w0, w1, w2, w3};
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        c[i][j] = _mm512_add_epi64(c[i][j], _mm512_popcnt_epi64(_mm512_xor_si512(as[i], ws[j])));
      }
    }
  }
  __m512i sum = _mm512_setzero_si512();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) sum = _mm512_add_epi64(sum, c[i][j]);
  // Keep the result alive (the caller only needs the MAC count).
  volatile long long sink = _mm512_reduce_add_epi64(sum);
  (void)sink;
  return static_cast<std::uint64_t>(iters) * 16u * 512u;
}

}  // namespace

const BgemmKernels kBgemmAvx512 = {kMR, ukernel_avx512, threshold_avx512, peak_avx512,
                                   "vpxorq + vpopcntq + vpaddq per 512 bit pairs", ukernel_seg_avx512};

}  // namespace onebit

#else  // not x86

namespace onebit {
const BgemmKernels kBgemmAvx512 = {1, nullptr, nullptr, nullptr, "n/a", nullptr};
}  // namespace onebit

#endif
