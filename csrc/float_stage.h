// The float output stage of the binary kernels (BinaryConv2d::run_float, bgemm_float): per
// output channel o of an int32 result y,
//   z = act(float(y) * scale[o] + bias[o]), then z = z * post_scale[o] + post_bias[o] if
//   post_scale is not null; act 0 = none, 1 = relu (max(z, 0)), 2 = hardtanh (clip to
//   [-1, 1]). Each step rounds to float32 on its own (no fused multiply-add: the library
//   is compiled with -ffp-contract=off), so the result equals numpy's separate operations.
#pragma once

#include <cstdint>

namespace onebit {

struct FloatStage {
  const float* scale;
  const float* bias;
  int act;
  const float* post_scale;
  const float* post_bias;
};

// m rows of channels [c0, c1): dst[p * ldd + j] = stage of src[p * lds + j] with the
// parameters of channel c0 + j.
void apply_float_stage(const FloatStage& stage, const std::int32_t* src, std::int64_t lds, float* dst,
                       std::int64_t ldd, std::int64_t m, std::int64_t c0, std::int64_t c1);

}  // namespace onebit
