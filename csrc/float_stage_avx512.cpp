// The float output stage (float_stage.h) in AVX-512 intrinsics: 16 channels per zmm, the
// blocks of 16 outer and the rows inner, so each block's parameters stay in registers and
// a row costs only its own loads and stores; the signs come from the same registers (a
// compare mask is 16 output bits), with no second pass over the floats.
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
#include <cstring>

#include "bitpack.h"
#include "float_stage.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include "immintrin_quiet.h"

#define ONEBIT_TARGET_AVX512 __attribute__((target("avx512f,avx512bw")))

namespace onebit {
namespace {

template <bool Post, bool Res, bool Prelu, bool Signs>
ONEBIT_TARGET_AVX512 void block_rows(const FloatStage& st, int act, const std::int32_t* src, std::int64_t lds,
                                     std::int64_t m, std::int64_t o, __mmask16 k, float* dst, const float* res,
                                     std::int64_t ldo, std::uint64_t* bits, std::int64_t words) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __m512 scale = _mm512_maskz_loadu_ps(k, st.scale + o), bias = _mm512_maskz_loadu_ps(k, st.bias + o);
  __m512 ps = zero, pb = zero, si = zero, sl = zero, so = zero, sh = zero;
  if constexpr (Post) {
    ps = _mm512_maskz_loadu_ps(k, st.post_scale + o);
    pb = _mm512_maskz_loadu_ps(k, st.post_bias + o);
  }
  if constexpr (Prelu) {
    si = _mm512_maskz_loadu_ps(k, st.prelu_shift_in + o);
    sl = _mm512_maskz_loadu_ps(k, st.prelu_slope + o);
    so = _mm512_maskz_loadu_ps(k, st.prelu_shift_out + o);
  }
  const bool shift = Signs && st.sign_shift != nullptr, relu_after = st.relu_after;
  if (shift) sh = _mm512_maskz_loadu_ps(k, st.sign_shift + o);
  for (std::int64_t p = 0; p < m; ++p) {
    __m512 z = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, src + p * lds));
    z = _mm512_mul_ps(z, scale);
    z = _mm512_add_ps(z, bias);
    if (act == 1) z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, zero, _CMP_LT_OQ), z, zero);
    if (act == 2) {
      const __m512 upper = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, one, _CMP_GT_OQ), z, one);
      z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(z, minus_one, _CMP_LT_OQ), upper, minus_one);
    }
    if constexpr (Post) {
      z = _mm512_mul_ps(z, ps);
      z = _mm512_add_ps(z, pb);
    }
    if constexpr (Res) z = _mm512_add_ps(z, _mm512_maskz_loadu_ps(k, res + p * ldo));
    if constexpr (Prelu) {
      const __m512 u = _mm512_sub_ps(z, si);
      const __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u, zero, _CMP_GT_OQ), u);
      const __m512 neg = _mm512_mul_ps(_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(u, zero, _CMP_LT_OQ), u), sl);
      z = _mm512_add_ps(pos, neg);
      z = _mm512_add_ps(z, so);
    }
    if (relu_after) z = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, zero, _CMP_NLE_UQ), z);
    _mm512_mask_storeu_ps(dst + p * ldo, k, z);
    if constexpr (Signs) {
      const __m512 v = shift ? _mm512_sub_ps(z, sh) : z;
      const auto b = static_cast<std::uint16_t>(_mm512_mask_cmp_ps_mask(k, v, zero, _CMP_LT_OQ));
      std::memcpy(reinterpret_cast<unsigned char*>(bits + p * words) + o / 8, &b, 2);
    }
  }
}

template <bool Post, bool Res, bool Prelu, bool Signs>
ONEBIT_TARGET_AVX512 void blocks(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t m,
                                 std::int64_t c0, std::int64_t c1, float* dst, const float* res, std::int64_t ldo,
                                 std::uint64_t* bits, std::int64_t words) {
  for (std::int64_t o = c0; o < c1; o += 16) {
    const std::int64_t left = c1 - o;
    const __mmask16 k = left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
    block_rows<Post, Res, Prelu, Signs>(st, st.act, src + (o - c0), lds, m, o, k, dst + o, Res ? res + o : nullptr,
                                        ldo, bits, words);
  }
}

ONEBIT_TARGET_AVX512 void stage_avx512(const FloatStage& st, const std::int32_t* src, std::int64_t lds,
                                       std::int64_t row0, std::int64_t m, std::int64_t c0, std::int64_t c1,
                                       float* out, std::int64_t ldo) {
  float* dst = out + row0 * ldo;
  const float* res = st.residual ? st.residual + row0 * ldo : nullptr;
  const std::int64_t words = words_for(ldo);
  std::uint64_t* bits = st.signs ? st.signs + row0 * words : nullptr;
  if (bits != nullptr) {
    // Signs come with whole rows (c0 = 0, c1 = ldo): the 16-bit halves past the last block
    // are the tail of the last word, 0.
    const std::int64_t written = (ldo + 15) / 16 * 2, total = words * 8;
    for (std::int64_t p = 0; p < m; ++p) {
      std::memset(reinterpret_cast<unsigned char*>(bits + p * words) + written, 0,
                  static_cast<std::size_t>(total - written));
    }
  }
  const int flags = (st.post_scale ? 1 : 0) | (st.residual ? 2 : 0) | (st.prelu_slope ? 4 : 0) | (bits ? 8 : 0);
  switch (flags) {
#define ONEBIT_STAGE_CASE(F)                                                                                 \
  case F:                                                                                                    \
    blocks<(F & 1) != 0, (F & 2) != 0, (F & 4) != 0, (F & 8) != 0>(st, src, lds, m, c0, c1, dst, res, ldo, bits, \
                                                                   words);                                  \
    break;
    ONEBIT_STAGE_CASE(0) ONEBIT_STAGE_CASE(1) ONEBIT_STAGE_CASE(2) ONEBIT_STAGE_CASE(3)
    ONEBIT_STAGE_CASE(4) ONEBIT_STAGE_CASE(5) ONEBIT_STAGE_CASE(6) ONEBIT_STAGE_CASE(7)
    ONEBIT_STAGE_CASE(8) ONEBIT_STAGE_CASE(9) ONEBIT_STAGE_CASE(10) ONEBIT_STAGE_CASE(11)
    ONEBIT_STAGE_CASE(12) ONEBIT_STAGE_CASE(13) ONEBIT_STAGE_CASE(14) ONEBIT_STAGE_CASE(15)
#undef ONEBIT_STAGE_CASE
    default: break;
  }
}

}  // namespace

const FloatStageFn kFloatStageAvx512 = stage_avx512;

}  // namespace onebit

#else  // not x86

namespace onebit {
const FloatStageFn kFloatStageAvx512 = nullptr;
}  // namespace onebit

#endif
