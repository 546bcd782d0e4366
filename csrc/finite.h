// The runtime's input check: no NaN or infinity in a float32 buffer.
#pragma once

#include <cstdint>

#include "dispatch.h"

namespace onebit {

// True iff none of x[0 .. n) is NaN or +-infinity (exponent bits all ones); isa picks the
// vector width the loop is compiled for (every ISA gives the same answer).
bool all_finite(const float* x, std::int64_t n, Isa isa);

}  // namespace onebit
