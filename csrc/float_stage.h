// The float output stage of the binary kernels (BinaryConv2d::run_float, bgemm_float): per
// output channel o of an int32 result y, in this order, each step skipped where its
// parameters are null:
//   z = act(float(y) * scale[o] + bias[o])      act 0 = none, 1 = relu, 2 = hardtanh [-1, 1]
//   z = z * post_scale[o] + post_bias[o]        (an affine after the activation)
//   z = z * gate[row / gate_rows, o]            (a per-sample channel gate: Real-to-Binary Net)
//   z = z + residual[row, o]                    (a Bi-Real / ReActNet shortcut; after RPReLU instead
//                                                with residual_last: Real-to-Binary Net)
//   z = (max(u, 0) + min(u, 0) * slope[o]) + shift_out[o],  u = z - shift_in[o]   (RPReLU)
//   z = z <= 0 ? 0 : z                          (relu_after: numpy's maximum(z, 0), -0 -> +0, NaN kept)
// and optionally also the packed sign of the result for the next binary layer: bit 1 where
// z - sign_shift[o] < 0 (sign_shift null: z < 0). Each step rounds to float32 on its own
// (no fused multiply-add: the library is compiled with -ffp-contract=off), so the result
// equals numpy's separate operations, which is how the runtime runs these steps unfused.
#pragma once

#include <cstdint>
#include <type_traits>

#include "dispatch.h"

namespace onebit {

struct FloatStage {
  const float* scale;
  const float* bias;
  int act;
  const float* post_scale;
  const float* post_bias;
  const float* residual = nullptr;  // rows like the output's (row stride: the output's)
  const float* prelu_shift_in = nullptr;  // with prelu_slope and prelu_shift_out
  const float* prelu_slope = nullptr;
  const float* prelu_shift_out = nullptr;
  bool relu_after = false;  // a ReLU after the residual (QuickNet's transition)
  const float* gate = nullptr;  // rows of the output's channels, one per sample
  std::int64_t gate_rows = 1;   // output rows per sample (a conv's OH * OW)
  bool residual_last = false;   // the residual added after the RPReLU
  std::uint64_t* signs = nullptr;  // rows of words_for(channels) uint64, tail bits 0
  const float* sign_shift = nullptr;
};

// One signature per family: the stage of rows [row0, row0 + m) x channels [c0, c1) with
// its signs (see apply_float_stage). float_stage.cpp holds the reference (the baseline
// build of float_stage_impl.h), float_stage_avx2.cpp the same source compiled for AVX2,
// float_stage_avx512.cpp intrinsics doing the same operations (blocks of 16 channels over
// the rows, the signs from the compare masks); all bit-identical to the reference, tested.
using FloatStageFn = void (*)(const FloatStage& stage, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                              std::int64_t m, std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo);
extern const FloatStageFn kFloatStageScalar;  // float_stage.cpp (the reference)
extern const FloatStageFn kFloatStageAvx2;    // float_stage_avx2.cpp (nullptr off x86)
extern const FloatStageFn kFloatStageAvx512;  // float_stage_avx512.cpp (nullptr off x86)

// Calls fn(std::integral_constant<int, flags>{}) for flags in [0, 16): a stage's four optional
// steps as one compile-time argument, so each ISA's loops are instantiated per combination.
template <int F = 0, typename Fn>
inline void with_stage_flags(int flags, Fn&& fn) {
  if (flags == F) {
    fn(std::integral_constant<int, F>{});
  } else if constexpr (F < 15) {
    with_stage_flags<F + 1>(flags, fn);
  }
}

// Rows [row0, row0 + m) x channels [c0, c1) of the stage: src[p * lds + j] is y of row
// row0 + p, channel c0 + j; writes out[(row0 + p) * ldo + c0 + j] (ldo: the output's
// channels, also the residual's row stride). stage.signs needs whole rows (c0 = 0,
// c1 = ldo); isa: the stage's and the packer's.
void apply_float_stage(const FloatStage& stage, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                       std::int64_t m, std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo, Isa isa);

}  // namespace onebit
