// Run-time ISA selection and the per-ISA kernel tables.
//
// Every kernel family (bgemm micro-kernel, threshold output stage, bit packing, peak
// loop) has one signature, declared in bgemm.h / bitpack.h, and one implementation per
// ISA in its own translation unit (bgemm_scalar.cpp, bgemm_avx2.cpp, bgemm_avx512.cpp,
// bgemm_neon.cpp, bitpack.cpp, bitpack_avx2.cpp, bitpack_avx512.cpp, bitpack_neon.cpp).
// The x86 units mark their functions with __attribute__((target(...))) and keep
// everything else TU-local (anonymous namespace), so no AVX-512 copy of a shared inline
// function can be picked by the linker for baseline code. NEON is part of the AArch64
// baseline, so the NEON units need no target attribute; they are built on AArch64 only
// (and the x86 units there compile to empty tables). Everything is compiled with the
// baseline flags of the toolchain; the choice is made here, once, from cpuid + xgetbv
// (x86) or the build target (AArch64), or forced by ONEBIT_ISA.
#pragma once

#include <string>
#include <vector>

namespace onebit {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2, neon = 3 };

// "scalar", "avx2", "avx512", "neon".
const char* isa_name(Isa isa);

// Parses the name of an ISA known to this build's architecture (x86: scalar, avx2,
// avx512; AArch64: scalar, neon; elsewhere: scalar); throws std::invalid_argument
// naming those valid choices.
Isa parse_isa(const std::string& name);

// Whether this CPU (and OS: XSAVE-enabled register state) can run the ISA's kernels.
//   avx2:   AVX + AVX2 + POPCNT, XCR0 has SSE and AVX state.
//   avx512: the above + AVX512F + AVX512BW + AVX512VPOPCNTDQ, XCR0 has opmask and ZMM state.
//   neon:   built for AArch64 (Advanced SIMD is part of its baseline).
bool isa_supported(Isa isa);

// The ISAs this machine can run, slowest first (scalar is always there).
std::vector<Isa> available_isas();

// The ISA used when a call does not name one: ONEBIT_ISA if set (throws
// std::invalid_argument if the value is unknown or the CPU cannot run it), else the
// best supported one. Resolved once per process; a failed resolution throws again on
// every call.
Isa selected_isa();

// `name` empty -> selected_isa(); else parse_isa(name), which must be supported
// (std::invalid_argument otherwise).
Isa resolve_isa(const std::string& name);

// Human-readable CPU feature summary for diagnostics ("avx2 popcnt avx512f ...", "neon").
std::string cpu_features();

}  // namespace onebit
