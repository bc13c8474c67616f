// safetensors checkpoints: strict parsing, memory-mapped zero-copy reads, writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
//   {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b,
//   e]}}
// then the data section; offsets are relative to the data section.
// Validation is strict: the header must be well-formed JSON of that shape, N sane (<= 100 MiB and
// inside the file), every tensor's [b, e) inside the data section, no two tensors overlapping, and
// e - b == numel * dtype size. Every error names the file and, where there is one, the tensor.
// Precisely (the reference `safetensors` library's rules, plus a few stricter ones marked *):
//  - N in [1, 100 MiB] and 8 + N <= file size; the header is UTF-8 JSON, an object; duplicate keys
//    are rejected (*);
//  - "__metadata__" (optional) maps strings to strings;
//  - every other key is a non-empty (*) tensor name whose value is an object with exactly (*) the
//    fields dtype (one of F32 BF16 F16 F8_E4M3 F8_E5M2 I32 I64), shape (array of non-negative
//    integers) and data_offsets ([b, e], non-negative integers, b <= e);
//  - each dimension and the product of the non-zero dimensions fit int64 (*), and
//    numel * dtype size does not overflow;
//  - sorted by offset, the tensors tile the data section exactly: no overlap, no hole between two
//    tensors and nothing after the last one (the reference rejects gaps: "MetadataIncompleteBuffer"
//    / "InvalidOffset").
// Index files (model.safetensors.index.json): a JSON object with "weight_map" {tensor: shard file}
// (shard names relative, inside the directory) and optional "metadata" {"total_size": number};
// every listed tensor must be in its shard, and every tensor of a shard must be listed for it.
//
// Alignment: views point into the mapping (the data section starts 8-byte aligned when the
// writer pads the header, as the reference writer and WriteSafetensors do). A tensor whose bytes
// are not aligned to its element size (legal in the format; WriteSafetensors keeps the given
// order, so put larger element sizes first; WriteCheckpoint does that within each shard) is
// returned as an owning aligned copy instead of a view.
// A file truncated by someone else while mapped raises SIGBUS on access: files are immutable.
//
// Ownership: SafetensorsFile owns one read-only mmap of the file; tensors it returns are views that
// keep the mapping alive (shared ownership), so they may outlive the SafetensorsFile object.
// Reading is const and thread-safe. Checkpoint groups one or several files (a single
// model.safetensors, or the shards listed by model.safetensors.index.json).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace tandem::core {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::map<std::string, TensorInfo> tensors;
  uint64_t data_offset = 0;  // 8 + header length
};

// Parses and validates a header. `file` is the whole file's bytes (or at least its first
// 8 + N bytes when `file_size` says how long the file is); `file_name` is used in messages.
// Never crashes on any input: this is the fuzzer's entry point.
[[nodiscard]] absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view file,
                                                                       uint64_t file_size,
                                                                       absl::string_view file_name);

class SafetensorsFile {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  bool Has(absl::string_view name) const;
  absl::StatusOr<TensorInfo> Info(absl::string_view name) const;

  // The whole tensor, zero-copy.
  [[nodiscard]] absl::StatusOr<Tensor> Get(absl::string_view name) const;
  // Rows [begin, end) of dimension 0, zero-copy (rows are contiguous).
  [[nodiscard]] absl::StatusOr<Tensor> GetRows(absl::string_view name, int64_t begin,
                                               int64_t end) const;
  // Columns [begin, end) of a 2-D tensor, copied into an owning [rows, end-begin] tensor; reads
  // only those bytes of each row.
  [[nodiscard]] absl::StatusOr<Tensor> ReadColumns(absl::string_view name, int64_t begin,
                                                   int64_t end) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  SafetensorsHeader header_;
  std::shared_ptr<const void> mapping_;  // the whole file
  uint64_t size_ = 0;
};

class Checkpoint {
 public:
  // `path` is a directory (with model.safetensors.index.json or model.safetensors, or exactly
  // one *.safetensors file), or a single .safetensors file, or an *.index.json file. Opens and
  // validates every shard (headers only; data is mapped, not read).
  [[nodiscard]] static absl::StatusOr<Checkpoint> Open(const std::string& path);

  std::vector<std::string> Names() const;  // sorted
  bool Has(absl::string_view name) const;
  absl::StatusOr<TensorInfo> Info(absl::string_view name) const;
  // File path holding `name` (for messages).
  absl::StatusOr<std::string> FileOf(absl::string_view name) const;
  [[nodiscard]] absl::StatusOr<Tensor> Get(absl::string_view name) const;
  [[nodiscard]] absl::StatusOr<Tensor> GetRows(absl::string_view name, int64_t begin,
                                               int64_t end) const;
  [[nodiscard]] absl::StatusOr<Tensor> ReadColumns(absl::string_view name, int64_t begin,
                                                   int64_t end) const;
  uint64_t TotalTensorBytes() const;

 private:
  absl::StatusOr<const SafetensorsFile*> FileFor(absl::string_view name) const;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t, std::less<>> index_;  // tensor name -> files_ index
};

// Writes one safetensors file (tensors in the given order, 8-byte aligned header). Names must be
// unique and non-empty, tensors defined and contiguous. Files are written to a temporary name
// and renamed into place, so readers never see a partial file.
[[nodiscard]] absl::Status WriteSafetensors(
    const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` into `dir` as model.safetensors (num_shards == 1) or as
// model-0000k-of-0000n.safetensors + model.safetensors.index.json, balancing bytes.
// Shards hold contiguous runs of the given order, each within one tensor's size of an even
// split and never empty (so num_shards > 1 needs at least num_shards tensors); within a file,
// tensors are stably ordered by element size, largest first (alignment). The index carries
// "metadata": {"total_size": <sum of tensor bytes>}; every file carries __metadata__ {"format":
// "pt"}, which Hugging Face loaders require. Creates `dir` if needed.
[[nodiscard]] absl::Status WriteCheckpoint(
    const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
    int num_shards);

}  // namespace tandem::core
