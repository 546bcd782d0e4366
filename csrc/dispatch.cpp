#include "dispatch.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define ONEBIT_X86 1
#endif

#if defined(__aarch64__) && defined(__ARM_NEON) && (defined(__GNUC__) || defined(__clang__))
#define ONEBIT_AARCH64 1
#endif

namespace onebit {
namespace {

struct CpuFeatures {
  bool popcnt = false, avx = false, avx2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vpopcntdq = false;
  bool os_avx = false;     // XCR0: SSE + AVX state enabled by the OS
  bool os_avx512 = false;  // XCR0: + opmask, ZMM_Hi256, Hi16_ZMM state
  bool neon = false;       // AArch64 Advanced SIMD
};

// The ISAs this build's architecture has kernels for, slowest first.
constexpr Isa kKnownIsas[] = {
#if defined(ONEBIT_X86)
    Isa::scalar, Isa::avx2, Isa::avx512,
#elif defined(ONEBIT_AARCH64)
    Isa::scalar, Isa::neon,
#else
    Isa::scalar,
#endif
};

#if defined(ONEBIT_X86)
// xgetbv without -mxsave: the instruction's bytes, so the file builds with baseline flags.
std::uint64_t read_xcr0() {
  std::uint32_t eax = 0, edx = 0;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(ONEBIT_X86)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  f.popcnt = (ecx >> 23) & 1u;
  const bool osxsave = (ecx >> 27) & 1u;
  f.avx = (ecx >> 28) & 1u;
  if (osxsave) {
    const std::uint64_t xcr0 = read_xcr0();
    f.os_avx = (xcr0 & 0x6u) == 0x6u;         // XMM | YMM
    f.os_avx512 = (xcr0 & 0xe6u) == 0xe6u;    // + opmask | ZMM_Hi256 | Hi16_ZMM
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    f.avx2 = (ebx >> 5) & 1u;
    f.avx512f = (ebx >> 16) & 1u;
    f.avx512bw = (ebx >> 30) & 1u;
    f.avx512vl = (ebx >> 31) & 1u;
    f.avx512vpopcntdq = (ecx >> 14) & 1u;
  }
#endif
#if defined(ONEBIT_AARCH64)
  // Advanced SIMD is mandatory in AArch64 and the compiler already uses it in baseline
  // code, so a process that runs at all can run the NEON kernels.
  f.neon = true;
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "?";
}

namespace {

// "scalar, avx2, avx512" (x86): the ISA names this build knows, for error messages.
std::string known_names() {
  std::string s;
  for (Isa isa : kKnownIsas) s += std::string(s.empty() ? "" : ", ") + isa_name(isa);
  return s;
}

}  // namespace

Isa parse_isa(const std::string& name) {
  for (Isa isa : kKnownIsas) {
    if (name == isa_name(isa)) return isa;
  }
  throw std::invalid_argument("unknown ISA '" + name + "'; valid choices: " + known_names());
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.os_avx && f.avx && f.avx2 && f.popcnt;
    case Isa::avx512:
      return f.os_avx && f.avx && f.avx2 && f.popcnt && f.os_avx512 && f.avx512f && f.avx512bw &&
             f.avx512vpopcntdq;
    case Isa::neon: return f.neon;
  }
  return false;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : kKnownIsas) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

std::string cpu_features() {
  const CpuFeatures& f = features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.popcnt, "popcnt");
  add(f.avx, "avx");
  add(f.avx2, "avx2");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vpopcntdq, "avx512vpopcntdq");
  add(f.os_avx, "os:ymm");
  add(f.os_avx512, "os:zmm");
  add(f.neon, "neon");
  return s;
}

namespace {

// "scalar, avx2, ...": the ISAs this CPU can run, for error messages.
std::string available_names() {
  std::string s;
  for (Isa isa : available_isas()) s += std::string(s.empty() ? "" : ", ") + isa_name(isa);
  return s;
}

Isa resolve_selected() {
  const char* env = std::getenv("ONEBIT_ISA");
  if (env != nullptr && *env != '\0') {
    Isa isa;
    try {
      isa = parse_isa(env);
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument(std::string("ONEBIT_ISA='") + env +
                                  "' is not a known ISA; valid choices: " + known_names());
    }
    if (!isa_supported(isa)) {
      throw std::invalid_argument(std::string("ONEBIT_ISA=") + env +
                                  " but this CPU cannot run it (detected: " + cpu_features() +
                                  "); valid choices here: " + available_names());
    }
    return isa;
  }
  const std::vector<Isa> isas = available_isas();
  return isas.back();
}

}  // namespace

Isa selected_isa() {
  // Resolved once; a failed resolution (bad ONEBIT_ISA) is not cached and throws again.
  static std::atomic<int> cached{-1};
  const int c = cached.load(std::memory_order_acquire);
  if (c >= 0) return static_cast<Isa>(c);
  const Isa isa = resolve_selected();
  cached.store(static_cast<int>(isa), std::memory_order_release);
  return isa;
}

Isa resolve_isa(const std::string& name) {
  if (name.empty()) return selected_isa();
  const Isa isa = parse_isa(name);
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string("ISA '") + name + "' is not supported by this CPU (detected: " +
                                cpu_features() + "); valid choices here: " + available_names());
  }
  return isa;
}

}  // namespace onebit
