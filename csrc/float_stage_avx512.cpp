// The float output stage (float_stage.h) in AVX-512 intrinsics: 16 channels per zmm, row
// by row; the signs come from the same registers (a compare mask is 16 output bits), with
// no second pass over the floats.
//
// Bit-identical to the reference (float_stage_impl.h): the same float32 operations in the
// same order, each rounded on its own (vmulps then vaddps: the library is built with
// -ffp-contract=off, so no FMA is formed), and each select as the reference's compare:
//   relu      z < 0 ? 0 : z                       (_CMP_LT_OQ: NaN keeps z)
//   hardtanh  z < -1 ? -1 : (z > 1 ? 1 : z)
//   RPReLU    (u > 0 ? u : 0) + (u < 0 ? u : 0) * slope + shift_out,  u = z - shift_in
//   relu      z <= 0 ? 0 : z  after the residual  (_CMP_NLE_UQ keeps z where not z <= 0: NaN too)
//   sign bit  (z - shift) < 0                     (the packer's ordered compare)
//
// Only functions with the target attribute, all TU-local: nothing here can be picked by
// the linker for baseline code.
#include <cstdint>

#include "bitpack.h"
#include "float_stage.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include "immintrin_quiet.h"

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw")))

namespace onebit {
namespace {

// The stage's parameters as locals of the row loop (read through the FloatStage, every
// pointer would be reloaded after each store: the compiler cannot rule out aliasing).
struct Params {
  const float *scale, *bias, *post_scale, *post_bias, *shift_in, *slope, *shift_out, *sign_shift;
  int act;
  bool relu_after, residual_last;
  const float* gate;
  std::int64_t gate_rows;
};

inline Params params_of(const FloatStage& st, bool signs) {
  return {st.scale, st.bias, st.post_scale, st.post_bias, st.prelu_shift_in, st.prelu_slope, st.prelu_shift_out,
          signs ? st.sign_shift : nullptr, st.act, st.relu_after, st.residual_last, st.gate, st.gate_rows};
}

// The stage of one 16-channel block of one row: z, stored, and its 16 sign bits (Signs).
// gate: the row's sample's gate row, or null.
template <bool Post, bool Res, bool Prelu, bool Signs>
ONEBIT_TARGET_AVX512 __attribute__((always_inline)) inline std::uint64_t block(const Params& q,
                                                                               const std::int32_t* src,
                                                                               std::int64_t o, __mmask16 k,
                                                                               float* dst, const float* res,
                                                                               const float* gate) {
  const __m512 zero = _mm512_setzero_ps();
  __m512 z = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, src));
  z = _mm512_mul_ps(z, _mm512_maskz_loadu_ps(k, q.scale + o));
  z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, q.bias + o));
  if (q.act == 1) z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, zero, _CMP_LT_OQ), z, zero);
  if (q.act == 2) {
    const __m512 one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
    const __m512 upper = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, one, _CMP_GT_OQ), z, one);
    z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, minus_one, _CMP_LT_OQ), upper, minus_one);
  }
  if constexpr (Post) {
    z = _mm512_mul_ps(z, _mm512_maskz_loadu_ps(k, q.post_scale + o));
    z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, q.post_bias + o));
  }
  if (gate != nullptr) z = _mm512_mul_ps(z, _mm512_maskz_loadu_ps(k, gate + o));
  if (Res && !q.residual_last) z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, res));
  if constexpr (Prelu) {
    const __m512 u = _mm512_sub_ps(z, _mm512_maskz_loadu_ps(k, q.shift_in + o));
    const __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u, zero, _CMP_GT_OQ), u);
    const __m512 neg = _mm512_mul_ps(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u, zero, _CMP_LT_OQ), u),
                                     _mm512_maskz_loadu_ps(k, q.slope + o));
    z = _mm512_add_ps(pos, neg);
    z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, q.shift_out + o));
  }
  if (Res && q.residual_last) z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, res));
  if (q.relu_after) z = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, zero, _CMP_NLE_UQ), z);
  _mm512_mask_storeu_ps(dst, k, z);
  if constexpr (!Signs) return 0;
  const __m512 v = q.sign_shift != nullptr ? _mm512_sub_ps(z, _mm512_maskz_loadu_ps(k, q.sign_shift + o)) : z;
  return _mm512_mask_cmp_ps_mask(k, v, zero, _CMP_LT_OQ);
}

// Row by row, the row's blocks in order: every array is read and written in address order.
// (Blocks outer and rows inner kept each block's parameters in registers but walked the
// rows ldo floats apart; at 256 channels that ran at ~12-15 cycles per 16 channels.) The
// parameters are re-read per row from L1. A row's signs are assembled a word (4 blocks)
// at a time and stored whole, tail bits 0.
template <bool Post, bool Res, bool Prelu, bool Signs>
ONEBIT_TARGET_AVX512 void rows(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                               std::int64_t m, std::int64_t c0, std::int64_t c1, float* dst, const float* res,
                               std::int64_t ldo, std::uint64_t* bits, std::int64_t words) {
  const Params q = params_of(st, Signs);
  constexpr __mmask16 kAll = 0xffff;
  const std::int64_t full_end = c0 + (c1 - c0) / 64 * 64;  // 64-channel runs: one sign word each
  for (std::int64_t p = 0; p < m; ++p) {
    const std::int32_t* s = src + p * lds - c0;  // s[o]: channel o of the row
    float* d = dst + p * ldo;
    const float* r = Res ? res + p * ldo : nullptr;
    std::uint64_t* row_bits = Signs ? bits + p * words : nullptr;
    const float* g = q.gate != nullptr ? q.gate + (row0 + p) / q.gate_rows * ldo : nullptr;
    std::int64_t o = c0;
    for (; o < full_end; o += 64) {
      std::uint64_t word = 0;
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const std::int64_t oj = o + 16 * j;
        word |= block<Post, Res, Prelu, Signs>(q, s + oj, oj, kAll, d + oj, Res ? r + oj : nullptr, g) << (16 * j);
      }
      if constexpr (Signs) row_bits[o / 64] = word;
    }
    if (o < c1) {  // the last < 64 channels (c0 = 0 with signs: their word starts at o)
      std::uint64_t word = 0;
      for (std::int64_t j = 0; o + 16 * j < c1; ++j) {
        const std::int64_t oj = o + 16 * j, left = c1 - oj;
        const __mmask16 k = left >= 16 ? kAll : static_cast<__mmask16>((1u << left) - 1u);
        word |= block<Post, Res, Prelu, Signs>(q, s + oj, oj, k, d + oj, Res ? r + oj : nullptr, g) << (16 * j);
      }
      if constexpr (Signs) row_bits[o / 64] = word;
    }
  }
}

// Narrow outputs (< 64 channels, rows of a few cache lines): a 16-channel block at a time
// over all the rows, which costs fewer instructions per block than the row loop above.
template <bool Post, bool Res, bool Prelu, bool Signs>
ONEBIT_TARGET_AVX512 void columns(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                                  std::int64_t m, std::int64_t c0, std::int64_t c1, float* dst, const float* res,
                                  std::int64_t ldo, std::uint64_t* bits, std::int64_t words) {
  const Params q = params_of(st, Signs);
  if constexpr (Signs) {
    for (std::int64_t p = 0; p < m; ++p) bits[p * words] = 0;  // c1 = ldo < 64: one word per row
  }
  for (std::int64_t o = c0; o < c1; o += 16) {
    const std::int64_t left = c1 - o;
    const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
    for (std::int64_t p = 0; p < m; ++p) {
      const float* g = q.gate != nullptr ? q.gate + (row0 + p) / q.gate_rows * ldo : nullptr;
      const std::uint64_t b = block<Post, Res, Prelu, Signs>(q, src + p * lds + (o - c0), o, k, dst + p * ldo + o,
                                                             Res ? res + p * ldo + o : nullptr, g);
      if constexpr (Signs) bits[p * words] |= b << o;
    }
  }
}

ONEBIT_TARGET_AVX512 void stage_avx512(const FloatStage& st, const std::int32_t* src, std::int64_t lds,
                                       std::int64_t row0, std::int64_t m, std::int64_t c0, std::int64_t c1,
                                       float* out, std::int64_t ldo) {
  float* dst = out + row0 * ldo;
  const float* res = st.residual ? st.residual + row0 * ldo : nullptr;
  const std::int64_t words = words_for(ldo);
  // Signs come with whole rows (c0 = 0, c1 = ldo): every word of a row is written.
  std::uint64_t* bits = st.signs ? st.signs + row0 * words : nullptr;
  const int flags = (st.post_scale ? 1 : 0) | (st.residual ? 2 : 0) | (st.prelu_slope ? 4 : 0) | (bits ? 8 : 0);
  with_stage_flags(flags, [&](auto f) {
    constexpr int F = decltype(f)::value;
    constexpr bool post = (F & 1) != 0, res_on = (F & 2) != 0, prelu = (F & 4) != 0, signs = (F & 8) != 0;
    if (c1 - c0 < 64) {
      columns<post, res_on, prelu, signs>(st, src, lds, row0, m, c0, c1, dst, res, ldo, bits, words);
    } else {
      rows<post, res_on, prelu, signs>(st, src, lds, row0, m, c0, c1, dst, res, ldo, bits, words);
    }
  });
}

}  // namespace

const FloatStageFn kFloatStageAvx512 = stage_avx512;

}  // namespace onebit

#else  // not x86

namespace onebit {
const FloatStageFn kFloatStageAvx512 = nullptr;
}  // namespace onebit

#endif
