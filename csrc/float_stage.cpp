// The float output stage (float_stage.h): the reference build of float_stage_impl.h and
// the per-ISA dispatch.
#include "float_stage.h"

#include <algorithm>
#include <cassert>
#include <cstdint>

#include "bitpack.h"

namespace onebit {

namespace {

#include "float_stage_impl.h"

void stage_scalar(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0, std::int64_t m,
                  std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo) {
  stage_impl(st, src, lds, row0, m, c0, c1, out, ldo, pack_rows_f32_scalar);
}

}  // namespace

const FloatStageFn kFloatStageScalar = stage_scalar;

void apply_float_stage(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                       std::int64_t m, std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo, Isa isa) {
  assert(st.signs == nullptr || (c0 == 0 && c1 == ldo));  // signs need whole rows (the callers' plans guarantee it)
  FloatStageFn fn = kFloatStageScalar;
  if (isa == Isa::avx512 && kFloatStageAvx512 != nullptr) fn = kFloatStageAvx512;
  if (isa == Isa::avx2 && kFloatStageAvx2 != nullptr) fn = kFloatStageAvx2;
  if (isa == Isa::neon) {
    // NEON is AArch64's baseline: the reference build is already vectorized with it; only
    // the signs take the NEON packer.
    stage_impl(st, src, lds, row0, m, c0, c1, out, ldo, bitpack_kernels(isa).pack);
    return;
  }
  fn(st, src, lds, row0, m, c0, c1, out, ldo);
}

}  // namespace onebit
