#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "core/json_limits.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace tandem::core {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // 100 MiB
constexpr char kIndexFile[] = "model.safetensors.index.json";
constexpr char kSingleFile[] = "model.safetensors";

// Names come from untrusted files: escape them so messages stay one printable line.
std::string Printable(absl::string_view s) { return absl::CHexEscape(s); }

absl::Status FileError(absl::string_view file, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", message));
}

absl::Status TensorError(absl::string_view file, absl::string_view tensor,
                         absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(file, ": tensor '", Printable(tensor), "': ", message));
}

absl::Status ErrnoError(absl::string_view what, absl::string_view path, int err) {
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  return err == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
}

uint64_t ReadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

const char* JsonTypeName(const Json& j) { return j.type_name(); }

// SAX pass that finds the first duplicate key of any object. (nlohmann's callback parser would
// do this in the DOM pass, but it rescans the parent object at every object end: quadratic in the
// number of tensors, minutes for a 10^5-tensor header.)
class DuplicateKeyFinder : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.empty() && !keys_.back().insert(k).second && duplicate_.empty()) duplicate_ = k;
    return duplicate_.empty();  // stop at the first
  }
  bool end_object() override {
    if (!keys_.empty()) keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }
  const std::string& duplicate() const { return duplicate_; }

 private:
  std::vector<std::set<std::string>> keys_;
  std::string duplicate_;
};

// Parses `text` as JSON, rejecting duplicate object keys (the DOM would silently keep the last).
absl::StatusOr<Json> ParseJsonStrict(absl::string_view text, absl::string_view file) {
  // Code that walks or prints a parsed value recurses per nesting level: bound it first.
  RETURN_IF_ERROR(Annotate(CheckJsonDepth(text, kMaxJsonDepth), file));
  Json j;
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return FileError(file, absl::StrCat("invalid JSON: ", e.what()));
  }
  DuplicateKeyFinder finder;
  Json::sax_parse(text.begin(), text.end(), &finder);
  if (!finder.duplicate().empty()) {
    return FileError(file,
                     absl::StrCat("duplicate JSON key '", Printable(finder.duplicate()), "'"));
  }
  return j;
}

// A JSON number that is a non-negative integer, or an error naming `what`.
absl::StatusOr<uint64_t> JsonUnsigned(const Json& j, absl::string_view file,
                                      absl::string_view tensor, absl::string_view what) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) {
    return TensorError(file, tensor, absl::StrCat(what, " is negative (", j.get<int64_t>(), ")"));
  }
  if (j.is_number_float()) {
    return TensorError(file, tensor, absl::StrCat(what, " is not an integer (", j.dump(), ")"));
  }
  return TensorError(file, tensor,
                     absl::StrCat(what, " must be an integer, found ", JsonTypeName(j)));
}

absl::StatusOr<TensorInfo> ParseTensorEntry(const std::string& name, const Json& entry,
                                            uint64_t data_size, absl::string_view file) {
  if (name.empty()) return FileError(file, "a tensor has an empty name");
  if (!entry.is_object()) {
    return TensorError(file, name,
                       absl::StrCat("entry must be a JSON object, found ", JsonTypeName(entry)));
  }
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return TensorError(file, name,
                         absl::StrCat("unexpected field '", Printable(key),
                                      "' (expected dtype, shape, data_offsets)"));
    }
  }
  TensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) return TensorError(file, name, "missing 'dtype'");
  if (!dtype_it->is_string()) {
    return TensorError(file, name,
                       absl::StrCat("'dtype' must be a string, found ", JsonTypeName(*dtype_it)));
  }
  absl::StatusOr<DType> dtype = DTypeFromSafetensors(dtype_it->get_ref<const std::string&>());
  if (!dtype.ok()) return TensorError(file, name, dtype.status().message());
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) return TensorError(file, name, "missing 'shape'");
  if (!shape_it->is_array()) {
    return TensorError(file, name,
                       absl::StrCat("'shape' must be an array, found ", JsonTypeName(*shape_it)));
  }
  // Every dimension and the product of the non-zero ones must fit int64 (Tensor strides).
  uint64_t nonzero_product = 1;
  bool has_zero = false;
  for (size_t i = 0; i < shape_it->size(); ++i) {
    ASSIGN_OR_RETURN(const uint64_t d,
                     JsonUnsigned((*shape_it)[i], file, name, absl::StrCat("shape[", i, "]")));
    constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (d == 0) {
      has_zero = true;
    } else if (d > kMax || nonzero_product > kMax / d) {
      return TensorError(file, name,
                         absl::StrCat("shape ", shape_it->dump(), " overflows 64-bit sizes"));
    } else {
      nonzero_product *= d;
    }
    info.shape.push_back(static_cast<int64_t>(d));
  }
  const uint64_t numel = has_zero ? 0 : nonzero_product;
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(DTypeSize(info.dtype)), &nbytes)) {
    return TensorError(file, name,
                       absl::StrCat("shape ", shape_it->dump(), " overflows 64-bit byte sizes"));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) return TensorError(file, name, "missing 'data_offsets'");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return TensorError(file, name,
                       absl::StrCat("'data_offsets' must be an array [begin, end], "
                                    "found ",
                                    offsets_it->dump()));
  }
  ASSIGN_OR_RETURN(info.begin, JsonUnsigned((*offsets_it)[0], file, name, "data_offsets[0]"));
  ASSIGN_OR_RETURN(info.end, JsonUnsigned((*offsets_it)[1], file, name, "data_offsets[1]"));
  if (info.begin > info.end) {
    return TensorError(
        file, name,
        absl::StrCat("data_offsets [", info.begin, ", ", info.end, "] has begin > end"));
  }
  if (info.end > data_size) {
    return TensorError(
        file, name,
        absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                     "] run past the end of the data section (", data_size, " bytes)"));
  }
  if (info.end - info.begin != nbytes) {
    return TensorError(
        file, name,
        absl::StrCat(SafetensorsDTypeName(info.dtype), " ", ShapeToString(info.shape),
                     ": expected ", nbytes, " bytes, found ", info.end - info.begin,
                     " (data_offsets [", info.begin, ", ", info.end, "])"));
  }
  return info;
}

absl::StatusOr<std::map<std::string, std::string>> ParseMetadata(const Json& j,
                                                                 absl::string_view file) {
  if (!j.is_object()) {
    return FileError(
        file, absl::StrCat("__metadata__ must be an object of strings, found ", JsonTypeName(j)));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : j.items()) {
    if (!value.is_string()) {
      return FileError(file, absl::StrCat("__metadata__ value of '", Printable(key),
                                          "' must be a string, found ", JsonTypeName(value)));
    }
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// The reference implementation's layout rule: sorted by offset, tensors tile the data section
// exactly (no overlap, no hole, nothing after the last tensor).
absl::Status CheckLayout(const std::map<std::string, TensorInfo>& tensors, uint64_t data_size,
                         absl::string_view file) {
  std::vector<const TensorInfo*> order;
  order.reserve(tensors.size());
  for (const auto& [name, info] : tensors) order.push_back(&info);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : order) {
    if (t->begin < covered) {
      return TensorError(file, t->name,
                         absl::StrCat("data_offsets [", t->begin, ", ", t->end,
                                      "] overlap tensor '", Printable(previous->name), "' [",
                                      previous->begin, ", ", previous->end, "]"));
    }
    if (t->begin > covered) {
      return TensorError(file, t->name,
                         absl::StrCat("bytes [", covered, ", ", t->begin,
                                      ") before it belong to no tensor (the data section must "
                                      "be contiguous)"));
    }
    covered = t->end;
    if (t->end > t->begin) previous = t;
  }
  if (covered != data_size) {
    return FileError(
        file, absl::StrCat("data section is ", data_size, " bytes but the tensors cover only ",
                           covered, " (trailing bytes belong to no tensor)"));
  }
  return absl::OkStatus();
}

absl::Status CheckRange(const TensorInfo& info, int64_t begin, int64_t end, int64_t limit,
                        absl::string_view what, absl::string_view file) {
  if (begin < 0 || begin > end || end > limit) {
    return absl::OutOfRangeError(absl::StrCat(file, ": tensor '", info.name, "' ",
                                              ShapeToString(info.shape), ": ", what, " [", begin,
                                              ", ", end, ") out of range [0, ", limit, ")"));
  }
  return absl::OkStatus();
}

// A view of `data` when it is aligned for `dtype`, else an owning aligned copy (only malformed-
// but-valid files written by other tools place tensors off their element alignment).
Tensor ViewOrCopy(const std::shared_ptr<const void>& mapping, const char* data, DType dtype,
                  Shape shape) {
  if (reinterpret_cast<uintptr_t>(data) % DTypeSize(dtype) == 0) {
    return Tensor::ViewOf(mapping, data, dtype, std::move(shape));
  }
  Tensor copy = Tensor::Empty(dtype, std::move(shape));
  std::memcpy(copy.raw(), data, copy.nbytes());
  return copy;
}

absl::Status WriteAll(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path, errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Writes `bytes` pieces to `path` through a temporary file and a rename, so readers never see
// a half-written file.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<std::pair<const void*, size_t>>& pieces) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", tmp, errno);
  absl::Status status;
  for (const auto& [data, size] : pieces) {
    status = WriteAll(fd, data, size, tmp);
    if (!status.ok()) break;
  }
  if (::close(fd) != 0 && status.ok()) status = ErrnoError("close", tmp, errno);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError("rename to", path, errno);
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

absl::Status CheckWritable(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::set<absl::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat("invalid tensor name '", name, "'"));
    }
    if (!names.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", name, "'"));
    }
    if (!tensor.defined() || !tensor.is_contiguous()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' must be defined and contiguous to be written"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view file, uint64_t file_size,
                                                         absl::string_view file_name) {
  if (file.size() > file_size) {
    return FileError(file_name, absl::StrCat("buffer of ", file.size(),
                                             " bytes is larger than the file size ", file_size));
  }
  if (file_size < 8) {
    return FileError(file_name, absl::StrCat("file is ", file_size,
                                             " bytes, too short for the 8-byte header length"));
  }
  if (file.size() < 8) {
    return FileError(file_name, absl::StrCat("only ", file.size(), " bytes were provided"));
  }
  const uint64_t n = ReadLe64(file.data());
  if (n == 0) return FileError(file_name, "header length is 0");
  if (n > kMaxHeaderBytes) {
    return FileError(file_name, absl::StrCat("header length ", n, " exceeds the limit of ",
                                             kMaxHeaderBytes, " bytes"));
  }
  if (n > file_size - 8) {
    return FileError(
        file_name, absl::StrCat("header length ", n, " runs past the end of the file (", file_size,
                                " bytes): truncated file?"));
  }
  if (file.size() < 8 + n) {
    return FileError(file_name, absl::StrCat("only ", file.size(), " bytes were provided, the ",
                                             "header needs ", 8 + n));
  }
  ASSIGN_OR_RETURN(const Json root, ParseJsonStrict(file.substr(8, n), file_name));
  if (!root.is_object()) {
    return FileError(file_name,
                     absl::StrCat("header must be a JSON object, found ", JsonTypeName(root)));
  }
  SafetensorsHeader header;
  header.data_offset = 8 + n;
  const uint64_t data_size = file_size - header.data_offset;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      ASSIGN_OR_RETURN(header.metadata, ParseMetadata(value, file_name));
      continue;
    }
    ASSIGN_OR_RETURN(TensorInfo info, ParseTensorEntry(key, value, data_size, file_name));
    header.tensors.emplace(key, std::move(info));
  }
  RETURN_IF_ERROR(CheckLayout(header.tensors, data_size, file_name));
  return header;
}

// ---- SafetensorsFile ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* addr = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return ErrnoError("mmap", path, err);
    }
    const size_t size = file->size_;
    file->mapping_ = std::shared_ptr<const void>(
        addr, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  }
  ::close(fd);
  const absl::string_view bytes(static_cast<const char*>(file->mapping_.get()),
                                file->mapping_ ? file->size_ : 0);
  ASSIGN_OR_RETURN(file->header_, ParseSafetensorsHeader(bytes, file->size_, path));
  return file;
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::Has(absl::string_view name) const {
  return header_.tensors.count(std::string(name)) > 0;
}

absl::StatusOr<TensorInfo> SafetensorsFile::Info(absl::string_view name) const {
  auto it = header_.tensors.find(std::string(name));
  if (it == header_.tensors.end()) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", name, "'"));
  }
  return it->second;
}

absl::StatusOr<Tensor> SafetensorsFile::Get(absl::string_view name) const {
  ASSIGN_OR_RETURN(const TensorInfo info, Info(name));
  const char* data = static_cast<const char*>(mapping_.get()) + header_.data_offset + info.begin;
  return ViewOrCopy(mapping_, data, info.dtype, info.shape);
}

absl::StatusOr<Tensor> SafetensorsFile::GetRows(absl::string_view name, int64_t begin,
                                                int64_t end) const {
  ASSIGN_OR_RETURN(const TensorInfo info, Info(name));
  if (info.shape.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor '", name, "' is a scalar, it has no rows"));
  }
  RETURN_IF_ERROR(CheckRange(info, begin, end, info.shape[0], "rows", path_));
  int64_t row_elems = 1;
  for (size_t i = 1; i < info.shape.size(); ++i) row_elems *= info.shape[i];
  Shape shape = info.shape;
  shape[0] = end - begin;
  const char* data = static_cast<const char*>(mapping_.get()) + header_.data_offset + info.begin +
                     static_cast<uint64_t>(begin * row_elems) * DTypeSize(info.dtype);
  return ViewOrCopy(mapping_, data, info.dtype, std::move(shape));
}

absl::StatusOr<Tensor> SafetensorsFile::ReadColumns(absl::string_view name, int64_t begin,
                                                    int64_t end) const {
  ASSIGN_OR_RETURN(const TensorInfo info, Info(name));
  if (info.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "' ",
                                                   ShapeToString(info.shape),
                                                   ": ReadColumns needs a 2-D tensor"));
  }
  RETURN_IF_ERROR(CheckRange(info, begin, end, info.shape[1], "columns", path_));
  const int64_t rows = info.shape[0];
  const int64_t cols = info.shape[1];
  const size_t elem = DTypeSize(info.dtype);
  const size_t width = static_cast<size_t>(end - begin) * elem;
  Tensor out = Tensor::Empty(info.dtype, {rows, end - begin});
  const char* base = static_cast<const char*>(mapping_.get()) + header_.data_offset + info.begin;
  char* dst = static_cast<char*>(out.raw());
  if (width > 0) {
    for (int64_t r = 0; r < rows; ++r) {
      std::memcpy(dst + r * width, base + static_cast<size_t>(r * cols + begin) * elem, width);
    }
  }
  return out;
}

// ---- Checkpoint ---------------------------------------------------------------------------

namespace {

// Index shard names must stay inside the checkpoint directory.
bool IsPlainRelative(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  for (const auto& part : fs::path(name)) {
    if (part == "..") return false;
  }
  return true;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path, errno);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return ErrnoError("read", path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxHeaderBytes) {
      ::close(fd);
      return FileError(path, "index file is larger than 100 MiB");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

absl::StatusOr<Checkpoint> Checkpoint::Open(const std::string& path) {
  std::error_code ec;
  Checkpoint ckpt;
  std::string index_path;
  std::string single_path;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (fs::exists(dir / kIndexFile, ec)) {
      index_path = (dir / kIndexFile).string();
    } else if (fs::exists(dir / kSingleFile, ec)) {
      single_path = (dir / kSingleFile).string();
    } else {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.path().extension() == ".safetensors") found.push_back(entry.path().string());
      }
      if (found.size() != 1) {
        return absl::NotFoundError(absl::StrCat(path, ": expected ", kIndexFile, ", ", kSingleFile,
                                                " or exactly one *.safetensors file, found ",
                                                found.size(), " *.safetensors files"));
      }
      single_path = found[0];
    }
  } else if (absl::string_view(path).size() >= 11 &&
             absl::string_view(path).substr(path.size() - 11) == ".index.json") {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::Open(single_path));
    for (const auto& [name, info] : file->header().tensors) ckpt.index_.emplace(name, 0);
    ckpt.files_.push_back(std::move(file));
    return ckpt;
  }

  ASSIGN_OR_RETURN(const std::string text, ReadSmallFile(index_path));
  ASSIGN_OR_RETURN(const Json root, ParseJsonStrict(text, index_path));
  if (!root.is_object()) {
    return FileError(index_path,
                     absl::StrCat("index must be a JSON object, found ", JsonTypeName(root)));
  }
  if (auto meta = root.find("metadata"); meta != root.end()) {
    if (!meta->is_object()) {
      return FileError(index_path,
                       absl::StrCat("'metadata' must be an object, found ", JsonTypeName(*meta)));
    }
    if (auto total = meta->find("total_size"); total != meta->end() && !total->is_number()) {
      return FileError(index_path, absl::StrCat("metadata.total_size must be a number, found ",
                                                JsonTypeName(*total)));
    }
  }
  auto weight_map = root.find("weight_map");
  if (weight_map == root.end()) return FileError(index_path, "missing 'weight_map'");
  if (!weight_map->is_object()) {
    return FileError(index_path, absl::StrCat("'weight_map' must be an object, found ",
                                              JsonTypeName(*weight_map)));
  }
  // Shards in order of first appearance in the (sorted) weight map; tensor -> shard name.
  std::map<std::string, size_t> shard_ids;
  std::vector<std::string> shard_names;
  std::map<std::string, size_t> listed;
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string()) {
      return FileError(index_path,
                       absl::StrCat("weight_map['", Printable(tensor),
                                    "'] must be a file name string, found ", JsonTypeName(shard)));
    }
    const std::string& shard_name = shard.get_ref<const std::string&>();
    if (!IsPlainRelative(shard_name)) {
      return FileError(
          index_path, absl::StrCat("weight_map['", Printable(tensor), "'] = '",
                                   Printable(shard_name), "' is not a file inside the checkpoint"));
    }
    auto [it, inserted] = shard_ids.emplace(shard_name, shard_names.size());
    if (inserted) shard_names.push_back(shard_name);
    listed.emplace(tensor, it->second);
  }
  const fs::path dir = fs::path(index_path).parent_path();
  for (const std::string& shard_name : shard_names) {
    ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                     SafetensorsFile::Open((dir / shard_name).string()));
    ckpt.files_.push_back(std::move(file));
  }
  for (size_t f = 0; f < ckpt.files_.size(); ++f) {
    for (const auto& [name, info] : ckpt.files_[f]->header().tensors) {
      auto it = listed.find(name);
      if (it == listed.end()) {
        return FileError(ckpt.files_[f]->path(),
                         absl::StrCat("holds tensor '", Printable(name), "' which ", index_path,
                                      " does not list"));
      }
      if (it->second != f) {
        return FileError(ckpt.files_[f]->path(),
                         absl::StrCat("holds tensor '", Printable(name), "' which ", index_path,
                                      " places in ", shard_names[it->second]));
      }
    }
  }
  for (const auto& [name, f] : listed) {
    if (!ckpt.files_[f]->Has(name)) {
      return FileError(ckpt.files_[f]->path(),
                       absl::StrCat("missing tensor '", Printable(name), "' which ", index_path,
                                    " places in this shard"));
    }
    ckpt.index_.emplace(name, f);
  }
  return ckpt;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, file] : index_) names.push_back(name);
  return names;
}

bool Checkpoint::Has(absl::string_view name) const { return index_.count(std::string(name)) > 0; }

absl::StatusOr<const SafetensorsFile*> Checkpoint::FileFor(absl::string_view name) const {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", files_.empty() ? std::string("(empty)") : files_[0]->path(),
                     files_.size() > 1 ? absl::StrCat(" (+", files_.size() - 1, " shards)") : "",
                     ": no tensor '", name, "'"));
  }
  return files_[it->second].get();
}

absl::StatusOr<TensorInfo> Checkpoint::Info(absl::string_view name) const {
  ASSIGN_OR_RETURN(const SafetensorsFile* file, FileFor(name));
  return file->Info(name);
}

absl::StatusOr<std::string> Checkpoint::FileOf(absl::string_view name) const {
  ASSIGN_OR_RETURN(const SafetensorsFile* file, FileFor(name));
  return file->path();
}

absl::StatusOr<Tensor> Checkpoint::Get(absl::string_view name) const {
  ASSIGN_OR_RETURN(const SafetensorsFile* file, FileFor(name));
  return file->Get(name);
}

absl::StatusOr<Tensor> Checkpoint::GetRows(absl::string_view name, int64_t begin,
                                           int64_t end) const {
  ASSIGN_OR_RETURN(const SafetensorsFile* file, FileFor(name));
  return file->GetRows(name, begin, end);
}

absl::StatusOr<Tensor> Checkpoint::ReadColumns(absl::string_view name, int64_t begin,
                                               int64_t end) const {
  ASSIGN_OR_RETURN(const SafetensorsFile* file, FileFor(name));
  return file->ReadColumns(name, begin, end);
}

uint64_t Checkpoint::TotalTensorBytes() const {
  uint64_t total = 0;
  for (const auto& file : files_) {
    for (const auto& [name, info] : file->header().tensors) total += info.end - info.begin;
  }
  return total;
}

// ---- Writing --------------------------------------------------------------------------------

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<std::pair<std::string, Tensor>>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  RETURN_IF_ERROR(Annotate(CheckWritable(tensors), path));
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const uint64_t nbytes = tensor.nbytes();
    header[name] = {{"dtype", std::string(SafetensorsDTypeName(tensor.dtype()))},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - text.size() % 8) % 8, ' ');
  char len[8];
  uint64_t n = text.size();
  for (char& c : len) {
    c = static_cast<char>(n & 0xFF);
    n >>= 8;
  }
  std::vector<std::pair<const void*, size_t>> pieces = {{len, 8}, {text.data(), text.size()}};
  for (const auto& [name, tensor] : tensors) pieces.emplace_back(tensor.raw(), tensor.nbytes());
  return WriteFileAtomically(path, pieces);
}

absl::Status WriteCheckpoint(const std::string& dir,
                             const std::vector<std::pair<std::string, Tensor>>& tensors,
                             int num_shards) {
  if (num_shards < 1) {
    return absl::InvalidArgumentError(absl::StrCat("num_shards must be >= 1, got ", num_shards));
  }
  if (num_shards > 1 && static_cast<size_t>(num_shards) > tensors.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split ", tensors.size(), " tensors into ", num_shards, " shards"));
  }
  RETURN_IF_ERROR(Annotate(CheckWritable(tensors), dir));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("create directory ", dir, ": ", ec.message()));
  }

  // Contiguous split in the given order: a tensor goes to the next shard once the bytes before
  // its midpoint pass that shard's share of the total, keeping every shard non-empty.
  unsigned __int128 total = 0;
  for (const auto& [name, tensor] : tensors) total += tensor.nbytes();
  const size_t count = tensors.size();
  const size_t shards = static_cast<size_t>(num_shards);
  std::vector<std::vector<std::pair<std::string, Tensor>>> parts(shards);
  unsigned __int128 before = 0;
  size_t k = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t size = tensors[i].second.nbytes();
    if (!parts[k].empty() && k + 1 < shards) {
      const bool must = count - i == shards - 1 - k;
      const bool past = (before + size / 2) * shards >= (k + 1) * total;
      if (must || past) ++k;
    }
    parts[k].push_back(tensors[i]);
    before += size;
  }
  // Larger elements first keeps every tensor aligned to its element size.
  for (auto& part : parts) {
    std::stable_sort(part.begin(), part.end(), [](const auto& a, const auto& b) {
      return DTypeSize(a.second.dtype()) > DTypeSize(b.second.dtype());
    });
  }
  // Hugging Face loaders (transformers' load_state_dict) require the "format" metadata entry.
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards == 1) {
    return WriteSafetensors((fs::path(dir) / kSingleFile).string(), parts[0], metadata);
  }
  Json weight_map = Json::object();
  for (size_t s = 0; s < shards; ++s) {
    const std::string name = absl::StrCat("model-", absl::Dec(s + 1, absl::kZeroPad5), "-of-",
                                          absl::Dec(shards, absl::kZeroPad5), ".safetensors");
    RETURN_IF_ERROR(WriteSafetensors((fs::path(dir) / name).string(), parts[s], metadata));
    for (const auto& [tensor_name, tensor] : parts[s]) weight_map[tensor_name] = name;
  }
  const Json index = {{"metadata", {{"total_size", static_cast<uint64_t>(total)}}},
                      {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  return WriteFileAtomically((fs::path(dir) / kIndexFile).string(), {{text.data(), text.size()}});
}

}  // namespace tandem::core
