// <immintrin.h> for the AVX-512 units. GCC 12 warns that the _mm512_undefined_*
// placeholders inside its AVX-512 intrinsics are uninitialised (GCC bug 105593, fixed in
// 12.3): silenced for the header only. Include it inside the units' x86 #if.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
