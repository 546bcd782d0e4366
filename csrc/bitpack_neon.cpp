// NEON (AArch64) bit packing. Pack: fcmlt (x < 0, an ordered compare: -0.0 and NaNs of
// either sign give false, as the reference's `x < 0.0f`) on 4 floats at a time, the lane
// masks narrowed to one byte per float (uzp1), and the bytes of 64 floats turned into the
// 64 bits of a word by AND with per-byte bit weights and three rounds of pairwise byte
// adds (addp). A word of fewer than 64 floats (the row tail) goes 16 floats at a time
// (addv of each half), then one at a time. Unpack: 8 bits at a time, cmtst of the byte
// against per-lane bit weights, then a select of -1 / +1.
//
// NEON is part of the AArch64 baseline, so no target attribute is needed; this unit is
// built on AArch64 only (CMakeLists.txt). Everything is TU-local.
#include <cstdint>

#include "bitpack.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

namespace onebit {
namespace {

// 0xff in byte j where p[j] < 0, else 0, for j < 16.
inline uint8x16_t negative_bytes(const float* p) {
  const float32x4_t zero = vdupq_n_f32(0.0f);
  const uint32x4_t m0 = vcltq_f32(vld1q_f32(p), zero), m1 = vcltq_f32(vld1q_f32(p + 4), zero);
  const uint32x4_t m2 = vcltq_f32(vld1q_f32(p + 8), zero), m3 = vcltq_f32(vld1q_f32(p + 12), zero);
  const uint16x8_t h0 = vuzp1q_u16(vreinterpretq_u16_u32(m0), vreinterpretq_u16_u32(m1));
  const uint16x8_t h1 = vuzp1q_u16(vreinterpretq_u16_u32(m2), vreinterpretq_u16_u32(m3));
  return vuzp1q_u8(vreinterpretq_u8_u16(h0), vreinterpretq_u8_u16(h1));
}

// Byte j of a mask -> its bit j % 8 (summed per 8 bytes below).
inline uint8x16_t bit_weights() {
  const uint8x16_t w = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  return w;
}

// Bit j set where p[j] < 0, for j < 64.
inline std::uint64_t pack64(const float* p) {
  const uint8x16_t bw = bit_weights();
  const uint8x16_t t0 = vandq_u8(negative_bytes(p), bw), t1 = vandq_u8(negative_bytes(p + 16), bw);
  const uint8x16_t t2 = vandq_u8(negative_bytes(p + 32), bw), t3 = vandq_u8(negative_bytes(p + 48), bw);
  // Each round adds neighbouring bytes; after three, byte b is the sum of input bytes
  // 8 b .. 8 b + 7, i.e. bits 8 b .. 8 b + 7 of the word.
  uint8x16_t s = vpaddq_u8(vpaddq_u8(t0, t1), vpaddq_u8(t2, t3));
  s = vpaddq_u8(s, s);
  return vgetq_lane_u64(vreinterpretq_u64_u8(s), 0);
}

// Bit j set where p[j] < 0, for j < 16.
inline std::uint64_t pack16(const float* p) {
  const uint8x16_t t = vandq_u8(negative_bytes(p), bit_weights());
  return static_cast<std::uint64_t>(vaddv_u8(vget_low_u8(t))) |
         (static_cast<std::uint64_t>(vaddv_u8(vget_high_u8(t))) << 8);
}

void pack_neon(const float* x, std::int64_t rows, std::int64_t cols, std::uint64_t* out) {
  const std::int64_t words = words_for(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    std::uint64_t* dst = out + r * words;
    for (std::int64_t w = 0; w < words; ++w) {
      const float* p = row + 64 * w;
      const std::int64_t n = cols - 64 * w < 64 ? cols - 64 * w : 64;
      if (n == 64) {
        dst[w] = pack64(p);
        continue;
      }
      std::uint64_t word = 0;
      std::int64_t j = 0;
      for (; j + 16 <= n; j += 16) word |= pack16(p + j) << j;
      for (; j < n; ++j) word |= static_cast<std::uint64_t>(p[j] < 0.0f) << j;
      dst[w] = word;
    }
  }
}

void unpack_neon(const std::uint64_t* packed, std::int64_t rows, std::int64_t cols, float* out) {
  const std::int64_t words = words_for(cols);
  const uint32x4_t bits_lo = {1u, 2u, 4u, 8u}, bits_hi = {16u, 32u, 64u, 128u};
  const float32x4_t plus = vdupq_n_f32(1.0f), minus = vdupq_n_f32(-1.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t* src = packed + r * words;
    float* row = out + r * cols;
    std::int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const uint32x4_t byte = vdupq_n_u32(static_cast<std::uint32_t>((src[j / 64] >> (j % 64)) & 0xffu));
      vst1q_f32(row + j, vbslq_f32(vtstq_u32(byte, bits_lo), minus, plus));
      vst1q_f32(row + j + 4, vbslq_f32(vtstq_u32(byte, bits_hi), minus, plus));
    }
    for (; j < cols; ++j) row[j] = ((src[j / 64] >> (j % 64)) & 1u) ? -1.0f : 1.0f;
  }
}

}  // namespace

// The affine pack runs the scalar reference on NEON (the same bits; not a hot path there yet).
const BitpackKernels kBitpackNeon = {pack_neon, unpack_neon, pack_affine_rows_f32_scalar};

}  // namespace onebit

#else  // AArch64 without Advanced SIMD

namespace onebit {
const BitpackKernels kBitpackNeon = {nullptr, nullptr, nullptr};
}  // namespace onebit

#endif
