// The float output stage (float_stage.h).
#include "float_stage.h"

#include <type_traits>

namespace onebit {

namespace {

// Branch-free per element so that the compiler vectorizes it.
template <int Act, bool Post>
void stage_rows(const std::int32_t* src, std::int64_t lds, float* dst, std::int64_t ldd, std::int64_t m,
                std::int64_t n, const float* __restrict scale, const float* __restrict bias,
                const float* __restrict post_scale, const float* __restrict post_bias) {
  for (std::int64_t p = 0; p < m; ++p) {
    const std::int32_t* __restrict s = src + p * lds;
    float* __restrict d = dst + p * ldd;
    for (std::int64_t o = 0; o < n; ++o) {
      float z = static_cast<float>(s[o]) * scale[o];
      z = z + bias[o];
      if constexpr (Act == 1) z = z < 0.0f ? 0.0f : z;
      if constexpr (Act == 2) z = z < -1.0f ? -1.0f : (z > 1.0f ? 1.0f : z);
      if constexpr (Post) {
        z = z * post_scale[o];
        z = z + post_bias[o];
      }
      d[o] = z;
    }
  }
}

}  // namespace

void apply_float_stage(const FloatStage& st, const std::int32_t* src, std::int64_t lds, float* dst,
                       std::int64_t ldd, std::int64_t m, std::int64_t c0, std::int64_t c1) {
  const bool post = st.post_scale != nullptr;
  auto rows = [&](auto act, auto with_post) {
    stage_rows<decltype(act)::value, decltype(with_post)::value>(src, lds, dst, ldd, m, c1 - c0, st.scale + c0,
                                                                 st.bias + c0, post ? st.post_scale + c0 : nullptr,
                                                                 post ? st.post_bias + c0 : nullptr);
  };
  using None = std::integral_constant<int, 0>;
  using Relu = std::integral_constant<int, 1>;
  using Hardtanh = std::integral_constant<int, 2>;
  if (st.act == 1) {
    post ? rows(Relu{}, std::true_type{}) : rows(Relu{}, std::false_type{});
  } else if (st.act == 2) {
    post ? rows(Hardtanh{}, std::true_type{}) : rows(Hardtanh{}, std::false_type{});
  } else {
    post ? rows(None{}, std::true_type{}) : rows(None{}, std::false_type{});
  }
}

}  // namespace onebit
