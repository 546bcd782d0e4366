// all_finite (finite.h). x is not finite iff (bits & 0x7fffffff) > 0x7f7fffff (the
// largest finite float) as int32: a compare and an OR per value, which the compiler
// vectorizes (SSE2 included), with an exit between blocks. The body is one always_inline
// function instantiated by TU-local wrappers, the baseline one and two with
// __attribute__((target(...))), chosen by the dispatcher's ISA (the bmaxpool.cpp pattern).
#include "finite.h"

#include <algorithm>
#include <cstring>

#include "dispatch.h"

namespace onebit {

namespace {

__attribute__((always_inline)) inline bool finite_body(const float* x, std::int64_t n) {
  constexpr std::int64_t kBlock = 4096;
  constexpr std::int32_t kLargestFinite = 0x7f7fffff;
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t len = std::min(kBlock, n - b);
    std::int32_t bad = 0;
    for (std::int64_t i = 0; i < len; ++i) {
      std::int32_t bits;
      std::memcpy(&bits, x + b + i, sizeof bits);
      bad |= -static_cast<std::int32_t>((bits & 0x7fffffff) > kLargestFinite);
    }
    if (bad != 0) return false;
  }
  return true;
}

bool finite_baseline(const float* x, std::int64_t n) { return finite_body(x, n); }

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx2"))) bool finite_avx2(const float* x, std::int64_t n) { return finite_body(x, n); }
__attribute__((target("avx512f"))) bool finite_avx512(const float* x, std::int64_t n) { return finite_body(x, n); }
#else
bool finite_avx2(const float* x, std::int64_t n) { return finite_body(x, n); }
bool finite_avx512(const float* x, std::int64_t n) { return finite_body(x, n); }
#endif

}  // namespace

bool all_finite(const float* x, std::int64_t n, Isa isa) {
  switch (isa) {
    case Isa::avx512: return finite_avx512(x, n);
    case Isa::avx2: return finite_avx2(x, n);
    default: return finite_baseline(x, n);
  }
}

}  // namespace onebit
