// cpu.h — which instruction sets this CPU runs, as the kernel builds name them.
#pragma once

#include <string>

namespace lstmfast {

// "baseline" (any x86_64), "avx2" (with FMA), "avx512" (F, DQ, BW and VL).
inline bool cpu_supports(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
  return isa == "baseline";
}

}  // namespace lstmfast
