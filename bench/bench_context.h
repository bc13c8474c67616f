// What every Tandem benchmark records about the machine in its JSON context.
#pragma once

#include <fstream>
#include <string>

#include "benchmark/benchmark.h"

namespace tandem::bench {

// The CPU's model name from /proc/cpuinfo ("unknown" elsewhere).
inline std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

inline void AddMachineContext() { benchmark::AddCustomContext("cpu_model", CpuModel()); }

}  // namespace tandem::bench
