// The float output stage (float_stage.h) compiled for AVX2: 8 lanes (float_stage_impl.h under a
// target pragma; the signs with this ISA's packer). The region holds only TU-local
// functions: no avx2 copy of a shared inline function can reach baseline code.
#include <algorithm>
#include <cstdint>

#include "bitpack.h"
#include "float_stage.h"

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))

namespace onebit {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma,popcnt")
#include "float_stage_impl.h"

void stage_avx2(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0,
                 std::int64_t m, std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo) {
  stage_impl(st, src, lds, row0, m, c0, c1, out, ldo, kBitpackAvx2.pack);
}
#pragma GCC pop_options

}  // namespace

const FloatStageFn kFloatStageAvx2 = stage_avx2;

}  // namespace onebit

#else  // not x86

namespace onebit {
const FloatStageFn kFloatStageAvx2 = nullptr;
}  // namespace onebit

#endif
