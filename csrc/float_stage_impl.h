// The body of the float output stage (float_stage.h), compiled once per ISA: included
// inside an anonymous namespace by float_stage.cpp (baseline flags: the reference) and by
// float_stage_avx2.cpp under `#pragma GCC target`, where the compiler vectorizes the same
// per-element code 8 lanes wide (float_stage_avx512.cpp writes it in intrinsics). Every step is a
// separate IEEE float32 operation (the library is built with -ffp-contract=off: no FMA
// contraction) and the selects are written as compares, so every ISA's copy gives
// bit-identical results to the reference's. No #include here: the including unit
// provides <algorithm>, <cstdint>, float_stage.h and bitpack.h before its target region.

// Branch-free per element so that the compiler vectorizes it.
template <int Act, bool Post, bool Res, bool Prelu, bool Gate>
void stage_rows(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0, std::int64_t m,
                std::int64_t c0, std::int64_t n, float* dst, const float* res, std::int64_t ldo) {
  const float* __restrict scale = st.scale + c0;
  const float* __restrict bias = st.bias + c0;
  const float* __restrict ps = Post ? st.post_scale + c0 : nullptr;
  const float* __restrict pb = Post ? st.post_bias + c0 : nullptr;
  const float* __restrict si = Prelu ? st.prelu_shift_in + c0 : nullptr;
  const float* __restrict sl = Prelu ? st.prelu_slope + c0 : nullptr;
  const float* __restrict so = Prelu ? st.prelu_shift_out + c0 : nullptr;
  const bool relu_after = st.relu_after, res_first = Res && !st.residual_last, res_last = Res && st.residual_last;
  for (std::int64_t p = 0; p < m; ++p) {
    const std::int32_t* __restrict s = src + p * lds;
    float* __restrict d = dst + p * ldo;
    const float* __restrict r = Res ? res + p * ldo : nullptr;
    const float* __restrict g = Gate ? st.gate + (row0 + p) / st.gate_rows * ldo + c0 : nullptr;
    for (std::int64_t o = 0; o < n; ++o) {
      float z = static_cast<float>(s[o]) * scale[o];
      z = z + bias[o];
      if constexpr (Act == 1) z = z < 0.0f ? 0.0f : z;
      if constexpr (Act == 2) z = z < -1.0f ? -1.0f : (z > 1.0f ? 1.0f : z);
      if constexpr (Post) {
        z = z * ps[o];
        z = z + pb[o];
      }
      if constexpr (Gate) z = z * g[o];
      if (res_first) z = z + r[o];
      if constexpr (Prelu) {
        const float u = z - si[o];
        const float pos = u > 0.0f ? u : 0.0f;
        const float neg = (u < 0.0f ? u : 0.0f) * sl[o];
        z = pos + neg;
        z = z + so[o];
      }
      if (res_last) z = z + r[o];
      if (relu_after) z = z <= 0.0f ? 0.0f : z;
      d[o] = z;
    }
  }
}

template <int Act>
void dispatch_flags(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0, std::int64_t m,
                    std::int64_t c0, std::int64_t n, float* dst, const float* res, std::int64_t ldo) {
  const int flags = (st.post_scale ? 1 : 0) | (st.residual ? 2 : 0) | (st.prelu_slope ? 4 : 0) | (st.gate ? 8 : 0);
  with_stage_flags(flags, [&](auto f) {
    constexpr int F = decltype(f)::value;
    stage_rows<Act, (F & 1) != 0, (F & 2) != 0, (F & 4) != 0, (F & 8) != 0>(st, src, lds, row0, m, c0, n, dst, res,
                                                                             ldo);
  });
}

// The stage of rows [row0, row0 + m) x channels [c0, c1) (float_stage.h), then the signs
// with `pack` (this ISA's bit packer).
void stage_impl(const FloatStage& st, const std::int32_t* src, std::int64_t lds, std::int64_t row0, std::int64_t m,
                std::int64_t c0, std::int64_t c1, float* out, std::int64_t ldo, PackRowsFn pack) {
  float* dst = out + row0 * ldo + c0;
  const float* res = st.residual ? st.residual + row0 * ldo + c0 : nullptr;
  if (st.act == 1) {
    dispatch_flags<1>(st, src, lds, row0, m, c0, c1 - c0, dst, res, ldo);
  } else if (st.act == 2) {
    dispatch_flags<2>(st, src, lds, row0, m, c0, c1 - c0, dst, res, ldo);
  } else {
    dispatch_flags<0>(st, src, lds, row0, m, c0, c1 - c0, dst, res, ldo);
  }
  if (st.signs == nullptr) return;
  const std::int64_t words = words_for(ldo);
  std::uint64_t* bits = st.signs + row0 * words;
  const float* rows = out + row0 * ldo;
  if (st.sign_shift == nullptr) {
    pack(rows, m, ldo, bits);
    return;
  }
  // The differences of a row, a chunk of channels at a time, in a buffer on the stack
  // (chunks are whole words: their bits start at a word).
  constexpr std::int64_t kChunk = 512;
  float diff[kChunk];
  for (std::int64_t p = 0; p < m; ++p) {
    for (std::int64_t o0 = 0; o0 < ldo; o0 += kChunk) {
      const std::int64_t len = kChunk < ldo - o0 ? kChunk : ldo - o0;
      const float* __restrict z = rows + p * ldo + o0;
      const float* __restrict sh = st.sign_shift + o0;
      for (std::int64_t o = 0; o < len; ++o) diff[o] = z[o] - sh[o];
      pack(diff, 1, len, bits + p * words + o0 / 64);
    }
  }
}
