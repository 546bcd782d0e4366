// Run-time ISA selection and the per-ISA kernel tables.
//
// Every kernel family (bgemm micro-kernel, threshold output stage, bit packing, peak
// loop) has one signature, declared in bgemm.h / bitpack.h, and one implementation per
// ISA in its own translation unit (bgemm_scalar.cpp, bgemm_avx2.cpp, bgemm_avx512.cpp,
// bitpack.cpp, bitpack_avx2.cpp, bitpack_avx512.cpp). The ISA units mark their functions
// with __attribute__((target(...))) and keep everything else TU-local (anonymous
// namespace), so no AVX-512 copy of a shared inline function can be picked by the linker
// for baseline code. Everything is compiled with the baseline flags of the toolchain;
// the choice is made here, once, from cpuid + xgetbv, or forced by ONEBIT_ISA.
#pragma once

#include <string>
#include <vector>

namespace onebit {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

// "scalar", "avx2", "avx512".
const char* isa_name(Isa isa);

// Parses a name as above; throws std::invalid_argument naming the valid choices.
Isa parse_isa(const std::string& name);

// Whether this CPU (and OS: XSAVE-enabled register state) can run the ISA's kernels.
//   avx2:   AVX + AVX2 + POPCNT, XCR0 has SSE and AVX state.
//   avx512: the above + AVX512F + AVX512BW + AVX512VPOPCNTDQ, XCR0 has opmask and ZMM state.
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

// Human-readable CPU feature summary for diagnostics ("avx2 popcnt avx512f ...").
std::string cpu_features();

}  // namespace onebit
