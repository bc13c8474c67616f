// libFuzzer target for ParseSafetensorsHeader: the bytes are a whole safetensors file.
//
// Beyond "never crashes", it checks what callers rely on when a header is accepted: every tensor
// lies inside the buffer with e - b == numel * dtype size, the tensors tile the data section, and
// every byte of every tensor can be read (ASan checks the reads); a rejection names the file.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "core/safetensors.h"

namespace {

constexpr absl::string_view kFileName = "fuzz.safetensors";

void Require(bool condition) {
  if (!condition) std::abort();
}

void CheckAccepted(const tandem::core::SafetensorsHeader& header, absl::string_view file) {
  using tandem::core::DTypeSize;
  using tandem::core::NumElements;
  Require(header.data_offset >= 8 && header.data_offset <= file.size());
  const uint64_t data_size = file.size() - header.data_offset;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, info] : header.tensors) {
    Require(!name.empty() && name == info.name);
    Require(info.begin <= info.end && info.end <= data_size);
    Require(static_cast<uint64_t>(NumElements(info.shape)) * DTypeSize(info.dtype) ==
            info.end - info.begin);
    ranges.emplace_back(info.begin, info.end);
    unsigned char sum = 0;
    const char* p = file.data() + header.data_offset + info.begin;
    for (uint64_t i = 0; i < info.end - info.begin; ++i) sum ^= static_cast<unsigned char>(p[i]);
    volatile unsigned char sink = sum;
    (void)sink;
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    Require(b == covered);
    covered = e;
  }
  Require(covered == data_size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view file(reinterpret_cast<const char*>(data), size);
  auto header = tandem::core::ParseSafetensorsHeader(file, size, kFileName);
  if (header.ok()) {
    CheckAccepted(*header, file);
  } else {
    Require(absl::string_view(header.status().message()).find(kFileName) !=
            absl::string_view::npos);
  }
  // The prefix form (only the first bytes in memory, a longer file on disk) must stay in bounds.
  auto prefix = tandem::core::ParseSafetensorsHeader(file, uint64_t{size} + 64, kFileName);
  if (prefix.ok()) Require(prefix->data_offset <= size);
  return 0;
}
