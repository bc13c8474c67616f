#include "core/safetensors.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::core {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr DType kAllDTypes[] = {DType::kF32,    DType::kBF16, DType::kF16, DType::kF8E4M3,
                                DType::kF8E5M2, DType::kI32,  DType::kI64};

std::mt19937_64 MakeRng() {
  const uint64_t seed = std::random_device{}();
  std::cerr << "[ seed     ] " << seed << "\n";
  return std::mt19937_64(seed);
}

// Random bytes: the round trip is bitwise, so every bit pattern (NaNs included) must survive.
Tensor RandomTensor(DType dtype, Shape shape, std::mt19937_64& rng) {
  Tensor t = Tensor::Empty(dtype, std::move(shape));
  auto* p = static_cast<unsigned char*>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<unsigned char>(rng());
  return t;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("safetensors_test_", ::getpid(), "_", counter++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a raw safetensors file: 8-byte length, `header` verbatim, `data_bytes` zero bytes.
  std::string WriteRaw(const std::string& name, const std::string& header, size_t data_bytes,
                       uint64_t declared_length) const {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((declared_length >> (8 * i)) & 0xFF);
    bytes += header;
    bytes.append(data_bytes, '\0');
    return WriteBytes(name, bytes);
  }
  std::string WriteRaw(const std::string& name, const std::string& header,
                       size_t data_bytes) const {
    return WriteRaw(name, header, data_bytes, header.size());
  }
  std::string WriteBytes(const std::string& name, const std::string& bytes) const {
    const std::string path = Path(name);
    std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
    return path;
  }
  static std::string ReadBytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
};

// A mix of shapes for one dtype: matrices, a vector, a 3-D block, a scalar, an empty tensor.
std::vector<std::pair<std::string, Tensor>> MixedTensors(DType dtype, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> dim(1, 37);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int i = 0; i < 4; ++i) {
    tensors.emplace_back(absl::StrCat("layers.", i, ".weight"),
                         RandomTensor(dtype, {dim(rng), dim(rng)}, rng));
  }
  tensors.emplace_back("norm.bias", RandomTensor(dtype, {dim(rng)}, rng));
  tensors.emplace_back("conv", RandomTensor(dtype, {dim(rng), 3, dim(rng)}, rng));
  tensors.emplace_back("scalar", RandomTensor(dtype, {}, rng));
  tensors.emplace_back("empty", RandomTensor(dtype, {0, 5}, rng));
  return tensors;
}

class SafetensorsRoundTripTest : public SafetensorsTest,
                                 public ::testing::WithParamInterface<DType> {};

TEST_P(SafetensorsRoundTripTest, SingleFileAndShardsReturnTheWrittenBytes) {
  auto rng = MakeRng();
  const auto tensors = MixedTensors(GetParam(), rng);
  for (int shards : {1, 2, 3}) {
    SCOPED_TRACE(absl::StrCat("shards=", shards));
    const std::string dir = Path(absl::StrCat("ckpt", shards));
    ASSERT_TRUE(WriteCheckpoint(dir, tensors, shards).ok());
    if (shards == 1) {
      EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors"));
    } else {
      EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));
      EXPECT_TRUE(
          fs::exists(fs::path(dir) / absl::StrCat("model-00001-of-0000", shards, ".safetensors")));
    }
    absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    std::vector<std::string> expected_names;
    uint64_t total = 0;
    std::set<std::string> files;
    for (const auto& [name, tensor] : tensors) {
      expected_names.push_back(name);
      total += tensor.nbytes();
      ASSERT_TRUE(ckpt->Has(name));
      absl::StatusOr<Tensor> got = ckpt->Get(name);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(SameBytes(*got, tensor)) << name;
      absl::StatusOr<TensorInfo> info = ckpt->Info(name);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->dtype, GetParam());
      EXPECT_EQ(info->shape, tensor.shape());
      EXPECT_EQ(info->end - info->begin, tensor.nbytes());
      absl::StatusOr<std::string> file = ckpt->FileOf(name);
      ASSERT_TRUE(file.ok());
      files.insert(*file);
    }
    std::sort(expected_names.begin(), expected_names.end());
    EXPECT_EQ(ckpt->Names(), expected_names);
    EXPECT_EQ(ckpt->TotalTensorBytes(), total);
    EXPECT_EQ(files.size(), static_cast<size_t>(shards));
    EXPECT_FALSE(ckpt->Has("missing"));
    EXPECT_EQ(ckpt->Get("missing").status().code(), absl::StatusCode::kNotFound);
  }
}

TEST_P(SafetensorsRoundTripTest, RowsAndColumnsMatchTheFullTensor) {
  auto rng = MakeRng();
  const DType dtype = GetParam();
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"a", RandomTensor(dtype, {23, 41}, rng)}, {"b", RandomTensor(dtype, {7, 5, 3}, rng)}};
  ASSERT_TRUE(WriteCheckpoint(Path("ckpt"), tensors, 2).ok());
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(Path("ckpt"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const size_t elem = DTypeSize(dtype);
  for (int trial = 0; trial < 20; ++trial) {
    for (const auto& [name, full] : tensors) {
      std::uniform_int_distribution<int64_t> pick(0, full.dim(0));
      int64_t b = pick(rng), e = pick(rng);
      if (b > e) std::swap(b, e);
      absl::StatusOr<Tensor> rows = ckpt->GetRows(name, b, e);
      ASSERT_TRUE(rows.ok()) << rows.status();
      Shape shape = full.shape();
      shape[0] = e - b;
      ASSERT_EQ(rows->shape(), shape);
      EXPECT_TRUE(SameBytes(*rows, full.Slice0(b, e)));
    }
    const Tensor& full = tensors[0].second;
    std::uniform_int_distribution<int64_t> pick(0, full.dim(1));
    int64_t b = pick(rng), e = pick(rng);
    if (b > e) std::swap(b, e);
    absl::StatusOr<Tensor> cols = ckpt->ReadColumns("a", b, e);
    ASSERT_TRUE(cols.ok()) << cols.status();
    ASSERT_EQ(cols->shape(), (Shape{full.dim(0), e - b}));
    EXPECT_TRUE(cols->owns_storage());
    for (int64_t r = 0; r < full.dim(0); ++r) {
      EXPECT_EQ(std::memcmp(static_cast<const char*>(cols->raw()) + r * (e - b) * elem,
                            static_cast<const char*>(full.raw()) + (r * full.dim(1) + b) * elem,
                            (e - b) * elem),
                0)
          << "row " << r << " columns [" << b << ", " << e << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllDTypes, SafetensorsRoundTripTest, ::testing::ValuesIn(kAllDTypes),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST_F(SafetensorsTest, ViewsPointIntoTheMappingAndOutliveTheFile) {
  auto rng = MakeRng();
  const Tensor a = RandomTensor(DType::kF32, {16, 8}, rng);
  const Tensor b = RandomTensor(DType::kBF16, {9, 4}, rng);
  ASSERT_TRUE(WriteSafetensors(Path("m.safetensors"), {{"a", a}, {"b", b}}).ok());
  Tensor va, vb, rows;
  {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        SafetensorsFile::Open(Path("m.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    const SafetensorsHeader& h = (*file)->header();
    EXPECT_EQ(h.data_offset % 8, 0u);
    va = *(*file)->Get("a");
    vb = *(*file)->Get("b");
    rows = *(*file)->GetRows("a", 3, 7);
    // Zero-copy: repeated reads give the same address, and addresses follow the file layout.
    EXPECT_EQ((*file)->Get("a")->raw(), va.raw());
    EXPECT_EQ(static_cast<const char*>(vb.raw()) - static_cast<const char*>(va.raw()),
              static_cast<ptrdiff_t>(h.tensors.at("b").begin) -
                  static_cast<ptrdiff_t>(h.tensors.at("a").begin));
    EXPECT_EQ(static_cast<const char*>(rows.raw()) - static_cast<const char*>(va.raw()), 3 * 8 * 4);
  }
  // The SafetensorsFile is gone; the views keep the mapping alive.
  EXPECT_TRUE(SameBytes(va, a));
  EXPECT_TRUE(SameBytes(vb, b));
  EXPECT_TRUE(SameBytes(rows, a.Slice0(3, 7)));
  // The data is the file's bytes: the file is the reference layout.
  const std::string bytes = ReadBytes(Path("m.safetensors"));
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST_F(SafetensorsTest, MetadataRoundTripsAndHeaderIsReferenceShaped) {
  auto rng = MakeRng();
  const Tensor t = RandomTensor(DType::kI64, {3}, rng);
  ASSERT_TRUE(WriteSafetensors(Path("m.safetensors"), {{"t", t}}, {{"format", "pt"}}).ok());
  auto file = SafetensorsFile::Open(Path("m.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->header().metadata.at("format"), "pt");
  const std::string bytes = ReadBytes(Path("m.safetensors"));
  EXPECT_THAT(bytes, HasSubstr(R"("t":{"data_offsets":[0,24],"dtype":"I64","shape":[3]})"));
  EXPECT_THAT(bytes, HasSubstr(R"("__metadata__":{"format":"pt"})"));
}

TEST_F(SafetensorsTest, ReadsTheReferenceWritersFile) {
  // Written by the reference `safetensors` library (tests/core/testdata/
  // make_reference_safetensors.py): tensor k holds bytes (i * 37 + k * 11) & 0xFF.
  struct Expected {
    const char* name;
    DType dtype;
    Shape shape;
  };
  const std::vector<Expected> expected = {
      {"f32", DType::kF32, {3, 5}},    {"bf16", DType::kBF16, {4, 3}},
      {"f16", DType::kF16, {7}},       {"f8e4m3", DType::kF8E4M3, {2, 3, 2}},
      {"f8e5m2", DType::kF8E5M2, {5}}, {"i32", DType::kI32, {2, 2}},
      {"i64", DType::kI64, {3}},       {"scalar", DType::kF32, {}},
      {"empty", DType::kBF16, {0, 4}},
  };
  const std::string path =
      std::string(TANDEM_SOURCE_DIR) + "/tests/core/testdata/reference_all_dtypes.safetensors";
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->header().metadata.at("format"), "pt");
  EXPECT_EQ((*file)->header().tensors.size(), expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    SCOPED_TRACE(expected[k].name);
    absl::StatusOr<Tensor> t = (*file)->Get(expected[k].name);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->dtype(), expected[k].dtype);
    EXPECT_EQ(t->shape(), expected[k].shape);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->raw()) % DTypeSize(t->dtype()), 0u);
    const auto* bytes = static_cast<const unsigned char*>(t->raw());
    for (size_t i = 0; i < t->nbytes(); ++i) {
      ASSERT_EQ(bytes[i], (i * 37 + k * 11) & 0xFF) << "byte " << i;
    }
  }
}

TEST_F(SafetensorsTest, MisalignedTensorIsCopiedAligned) {
  // BF16 [1] at [0, 2), F32 [2] at [2, 10): legal, but the F32 data is not 4-byte aligned.
  const std::string header = R"({"h":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]},)"
                             R"("f":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  bytes += header;
  std::string pad((8 - bytes.size() % 8) % 8, ' ');
  bytes.insert(8 + header.size(), pad);
  bytes[0] = static_cast<char>(header.size() + pad.size());
  const float values[2] = {1.5f, -2.25f};
  bytes += std::string("\x11\x22", 2);
  bytes += std::string(reinterpret_cast<const char*>(values), sizeof values);
  auto file = SafetensorsFile::Open(WriteBytes("m.safetensors", bytes));
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Tensor> f = (*file)->Get("f");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->raw()) % 4, 0u);
  EXPECT_EQ(f->data<float>()[0], 1.5f);
  EXPECT_EQ(f->data<float>()[1], -2.25f);
}

TEST_F(SafetensorsTest, RangeErrors) {
  auto rng = MakeRng();
  ASSERT_TRUE(
      WriteSafetensors(Path("m.safetensors"), {{"m", RandomTensor(DType::kF16, {4, 6}, rng)},
                                               {"v", RandomTensor(DType::kF16, {5}, rng)},
                                               {"s", RandomTensor(DType::kF16, {}, rng)}})
          .ok());
  auto ckpt = Checkpoint::Open(Path("m.safetensors"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ(ckpt->GetRows("m", 2, 5).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ckpt->GetRows("m", -1, 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ckpt->GetRows("m", 3, 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(ckpt->GetRows("s", 0, 1).status().message()), HasSubstr("scalar"));
  EXPECT_EQ(ckpt->ReadColumns("m", 0, 7).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(ckpt->ReadColumns("v", 0, 1).status().message()), HasSubstr("2-D"));
  EXPECT_TRUE(ckpt->ReadColumns("m", 6, 6).ok());
  EXPECT_THAT(std::string(ckpt->Get("nope").status().message()), HasSubstr("nope"));
}

TEST_F(SafetensorsTest, WriteRejectsBadInput) {
  auto rng = MakeRng();
  const Tensor t = RandomTensor(DType::kF32, {2}, rng);
  EXPECT_FALSE(WriteSafetensors(Path("a.safetensors"), {{"x", t}, {"x", t}}).ok());
  EXPECT_FALSE(WriteSafetensors(Path("a.safetensors"), {{"", t}}).ok());
  EXPECT_FALSE(WriteSafetensors(Path("a.safetensors"), {{"__metadata__", t}}).ok());
  EXPECT_FALSE(WriteSafetensors(Path("a.safetensors"), {{"x", Tensor()}}).ok());  // no data
  EXPECT_FALSE(WriteCheckpoint(Path("c"), {{"x", t}}, 0).ok());
  EXPECT_FALSE(WriteCheckpoint(Path("c"), {{"x", t}, {"y", t}}, 3).ok());
  EXPECT_FALSE(WriteSafetensors(Path("no/such/dir/a.safetensors"), {{"x", t}}).ok());
}

TEST_F(SafetensorsTest, ShardsAreBalancedAndKeepOrder) {
  auto rng = MakeRng();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int i = 0; i < 12; ++i) {
    tensors.emplace_back(absl::StrCat("t", i < 10 ? "0" : "", i),
                         RandomTensor(DType::kBF16, {1 + i % 3, 64}, rng));
  }
  ASSERT_TRUE(WriteCheckpoint(Path("c"), tensors, 3).ok());
  auto ckpt = Checkpoint::Open(Path("c"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::map<std::string, uint64_t> bytes_per_file;
  std::string previous_file;
  int switches = 0;
  for (const auto& [name, tensor] : tensors) {
    const std::string file = *ckpt->FileOf(name);
    bytes_per_file[file] += tensor.nbytes();
    if (file != previous_file) ++switches;
    previous_file = file;
  }
  EXPECT_EQ(switches, 3);  // contiguous runs in the given order
  ASSERT_EQ(bytes_per_file.size(), 3u);
  const uint64_t total = ckpt->TotalTensorBytes();
  for (const auto& [file, bytes] : bytes_per_file) {
    EXPECT_LE(bytes, total / 3 + 3 * 64 * 2) << file;  // within one tensor of an even split
  }
}

// ---- Malformed files ----------------------------------------------------------------------

struct BadHeaderCase {
  const char* label;
  std::string header;
  size_t data_bytes;
  std::vector<std::string> expected;  // substrings of the error message
};

TEST_F(SafetensorsTest, MalformedHeadersAreRejectedWithFileAndTensorNamed) {
  const std::string ok_t = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<BadHeaderCase> cases = {
      {"not json", "{\"t\": ", 0, {"invalid JSON"}},
      {"not object", "[1, 2]", 0, {"JSON object", "array"}},
      {"entry not object", R"({"t": 3})", 0, {"'t'", "JSON object"}},
      {"missing dtype", R"({"t":{"shape":[2],"data_offsets":[0,8]}})", 8, {"'t'", "dtype"}},
      {"dtype type", R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8, {"'t'", "dtype"}},
      {"unknown dtype",
       R"({"t":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})",
       16,
       {"'t'", "F64"}},
      {"missing shape", R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8, {"'t'", "shape"}},
      {"shape type",
       R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})",
       8,
       {"'t'", "shape"}},
      {"negative dim",
       R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
       8,
       {"'t'", "negative"}},
      {"float dim",
       R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})",
       8,
       {"'t'", "not an integer"}},
      {"string dim",
       R"({"t":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})",
       8,
       {"'t'", "shape[0]"}},
      {"shape overflow",
       R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
       8,
       {"'t'", "overflow"}},
      {"dim past int64",
       R"({"t":{"dtype":"I64","shape":[18446744073709551615],"data_offsets":[0,8]}})",
       8,
       {"'t'", "overflow"}},
      {"bytes overflow",
       R"({"t":{"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,8]}})",
       8,
       {"'t'", "overflow"}},
      {"missing offsets", R"({"t":{"dtype":"F32","shape":[2]}})", 8, {"'t'", "data_offsets"}},
      {"offsets length",
       R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})",
       8,
       {"'t'", "data_offsets"}},
      {"offsets negative",
       R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})",
       8,
       {"'t'", "negative"}},
      {"offsets reversed",
       R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})",
       8,
       {"'t'", "begin > end"}},
      {"offsets past data",
       R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       4,
       {"'t'", "past the end of the data section"}},
      {"size mismatch",
       R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
       8,
       {"'t'", "expected 12 bytes, found 8"}},
      {"overlap",
       "{" + ok_t + R"(,"u":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12,
       {"'u'", "overlap", "'t'"}},
      {"gap",
       "{" + ok_t + R"(,"u":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
       16,
       {"'u'", "contiguous"}},
      {"trailing bytes", "{" + ok_t + "}", 12, {"cover only 8"}},
      {"extra field",
       R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})",
       8,
       {"'t'", "unexpected field 'x'"}},
      {"empty name", R"({"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, {"empty name"}},
      {"duplicate tensor", "{" + ok_t + "," + ok_t + "}", 8, {"duplicate", "'t'"}},
      {"metadata not object", "{\"__metadata__\":[1]," + ok_t + "}", 8, {"__metadata__"}},
      {"metadata not strings",
       "{\"__metadata__\":{\"k\":1}," + ok_t + "}",
       8,
       {"__metadata__", "'k'"}},
      {"bad utf8", "{\"t\xff\":1}", 0, {"invalid JSON"}},
  };
  for (const BadHeaderCase& c : cases) {
    SCOPED_TRACE(c.label);
    const std::string path = WriteRaw("bad.safetensors", c.header, c.data_bytes);
    auto file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(file.status().message());
    EXPECT_THAT(message, HasSubstr(path));
    for (const std::string& s : c.expected) EXPECT_THAT(message, HasSubstr(s));
    EXPECT_FALSE(Checkpoint::Open(path).ok());
  }
}

TEST_F(SafetensorsTest, MalformedLengthsAreRejected) {
  const std::string header = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  struct Case {
    const char* label;
    std::string path;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty file", WriteBytes("e.safetensors", ""), "0 bytes"},
      {"short file", WriteBytes("s.safetensors", "abc"), "3 bytes"},
      {"zero length", WriteRaw("z.safetensors", header, 8, 0), "header length is 0"},
      {"huge length", WriteRaw("h.safetensors", header, 8, uint64_t{1} << 62), "exceeds"},
      {"length past end", WriteRaw("p.safetensors", header, 8, header.size() + 9), "past the end"},
      {"truncated header", WriteRaw("t.safetensors", header.substr(0, 20), 0, header.size()),
       "past the end"},
      {"truncated data", WriteRaw("d.safetensors", header, 5), "past the end of the data"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    auto file = SafetensorsFile::Open(c.path);
    ASSERT_FALSE(file.ok());
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(c.path));
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(c.expected));
  }
  EXPECT_EQ(SafetensorsFile::Open(Path("absent.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(SafetensorsFile::Open(dir_.string()).ok());  // a directory
}

TEST_F(SafetensorsTest, ParserSurvivesRandomCorruption) {
  auto rng = MakeRng();
  ASSERT_TRUE(WriteSafetensors(Path("m.safetensors"),
                               {{"a", RandomTensor(DType::kBF16, {3, 5}, rng)},
                                {"b", RandomTensor(DType::kI32, {4}, rng)}},
                               {{"k", "v"}})
                  .ok());
  const std::string good = ReadBytes(Path("m.safetensors"));
  ASSERT_TRUE(ParseSafetensorsHeader(good, good.size(), "good").ok());
  int accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % bytes.size();
      switch (rng() % 3) {
        case 0:
          bytes[at] = static_cast<char>(rng());
          break;
        case 1:
          bytes.resize(at);
          break;
        default:
          bytes.insert(at, 1, "{}[],:\"0123456789-e. "[rng() % 21]);
          break;
      }
      if (bytes.empty()) break;
    }
    absl::StatusOr<SafetensorsHeader> h = ParseSafetensorsHeader(bytes, bytes.size(), "fuzz");
    if (!h.ok()) {
      EXPECT_THAT(std::string(h.status().message()), HasSubstr("fuzz"));
      continue;
    }
    ++accepted;
    // Whatever is accepted must describe bytes inside the buffer.
    for (const auto& [name, info] : h->tensors) {
      EXPECT_LE(h->data_offset + info.end, bytes.size()) << name;
    }
  }
  EXPECT_GT(accepted, 0);  // some flips only touch tensor data
  // The prefix form: only the header bytes in the buffer, the file size given separately.
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  EXPECT_TRUE(
      ParseSafetensorsHeader(absl::string_view(good).substr(0, 8 + n), good.size(), "p").ok());
  EXPECT_FALSE(
      ParseSafetensorsHeader(absl::string_view(good).substr(0, 8 + n - 1), good.size(), "p").ok());
}

// ---- Checkpoint directories and index files ------------------------------------------------

TEST_F(SafetensorsTest, DirectoryWithOneOtherNamedFile) {
  auto rng = MakeRng();
  const Tensor t = RandomTensor(DType::kF32, {3}, rng);
  fs::create_directories(Path("d"));
  ASSERT_TRUE(WriteSafetensors(Path("d/weights.safetensors"), {{"t", t}}).ok());
  auto ckpt = Checkpoint::Open(Path("d"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_TRUE(SameBytes(*ckpt->Get("t"), t));
  ASSERT_TRUE(WriteSafetensors(Path("d/other.safetensors"), {{"t", t}}).ok());
  EXPECT_THAT(std::string(Checkpoint::Open(Path("d")).status().message()), HasSubstr("found 2"));
  fs::create_directories(Path("empty"));
  EXPECT_FALSE(Checkpoint::Open(Path("empty")).ok());
}

TEST_F(SafetensorsTest, MalformedIndexFilesAreRejected) {
  auto rng = MakeRng();
  const Tensor t = RandomTensor(DType::kF32, {3}, rng);
  fs::create_directories(Path("c"));
  ASSERT_TRUE(WriteSafetensors(Path("c/s1.safetensors"), {{"a", t}, {"b", t}}).ok());
  ASSERT_TRUE(WriteSafetensors(Path("c/s2.safetensors"), {{"c", t}}).ok());
  ASSERT_TRUE(WriteSafetensors(Path("c/dup.safetensors"), {{"a", t}, {"d", t}}).ok());
  const std::string index = Path("c/model.safetensors.index.json");
  auto write_index = [&](const std::string& text) {
    std::ofstream(index, std::ios::binary) << text;
  };
  write_index(R"({"metadata":{"total_size":36},
                  "weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"}})");
  {
    auto ckpt = Checkpoint::Open(Path("c"));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    EXPECT_EQ(ckpt->Names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_THAT(*ckpt->FileOf("c"), HasSubstr("s2.safetensors"));
    EXPECT_TRUE(SameBytes(*ckpt->Get("c"), t));
    auto direct = Checkpoint::Open(index);  // the index file itself names the checkpoint too
    ASSERT_TRUE(direct.ok()) << direct.status();
  }
  struct Case {
    const char* label;
    std::string text;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"bad json", "{", {"model.safetensors.index.json", "invalid JSON"}},
      {"not object", "[]", {"model.safetensors.index.json", "JSON object"}},
      {"no weight_map", R"({"metadata":{}})", {"weight_map"}},
      {"weight_map array", R"({"weight_map":[]})", {"weight_map", "object"}},
      {"shard not string", R"({"weight_map":{"a":1}})", {"weight_map['a']"}},
      {"metadata not object", R"({"metadata":3,"weight_map":{}})", {"metadata"}},
      {"total_size string", R"({"metadata":{"total_size":"x"},"weight_map":{}})", {"total_size"}},
      {"missing shard file",
       R"({"weight_map":{"a":"s1.safetensors","x":"nope.safetensors"}})",
       {"nope.safetensors"}},
      {"escaping path", R"({"weight_map":{"a":"../s1.safetensors"}})", {"inside"}},
      {"absolute path", R"({"weight_map":{"a":"/etc/passwd"}})", {"inside"}},
      {"tensor missing from shard",
       R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s1.safetensors"}})",
       {"s1.safetensors", "missing tensor 'c'"}},
      {"tensor in two shards",
       R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","d":"dup.safetensors"}})",
       {"dup.safetensors", "'a'", "s1.safetensors"}},
      {"unlisted tensor",
       R"({"weight_map":{"a":"s1.safetensors"}})",
       {"s1.safetensors", "'b'", "does not list"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    write_index(c.text);
    auto ckpt = Checkpoint::Open(Path("c"));
    ASSERT_FALSE(ckpt.ok());
    for (const std::string& s : c.expected) {
      EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr(s));
    }
  }
}

}  // namespace
}  // namespace tandem::core

// Hostile headers: nesting 10^5 deep, huge arrays, wrong types. Clean errors, no crash.
namespace tandem::core {
namespace {

std::string WithLength(const std::string& header) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(64, '\0');
}

absl::Status ParseHeader(const std::string& header) {
  const std::string bytes = WithLength(header);
  return ParseSafetensorsHeader(bytes, bytes.size(), "hostile.safetensors").status();
}

TEST(SafetensorsLimitsTest, DeepNestingHugeArraysAndWrongTypesFailCleanly) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_THAT(std::string(ParseHeader("{\"t\":{\"dtype\":" + deep + "}}").message()),
              HasSubstr("hostile.safetensors: JSON nesting exceeds the limit of 128 levels"));
  EXPECT_THAT(std::string(ParseHeader("{\"__metadata__\":" + deep + "}").message()),
              HasSubstr("limit of 128"));
  EXPECT_THAT(std::string(ParseHeader(std::string(100000, '{')).message()),
              HasSubstr("limit of 128"));
  // A shape of 10^5 dimensions, offsets of 10^5 numbers, 10^5 tensors.
  std::string dims = "2";
  for (int i = 1; i < 100000; ++i) dims += ",2";  // 10^5 dimensions, 2^100000 elements
  absl::Status s =
      ParseHeader("{\"t\":{\"dtype\":\"F32\",\"shape\":[" + dims + "],\"data_offsets\":[0,4]}}");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("'t'"));
  s = ParseHeader("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + dims + "]}}");
  EXPECT_THAT(std::string(s.message()), HasSubstr("data_offsets"));
  std::string many = "{";
  const int kTensors = 100000;
  for (int i = 0; i < kTensors; ++i) {
    absl::StrAppend(&many, i ? "," : "", "\"t", i,
                    "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}");
  }
  s = ParseHeader(many + "}");
  EXPECT_FALSE(s.ok());
  // Wrong types, nested a little.
  EXPECT_THAT(
      std::string(
          ParseHeader("{\"t\":{\"dtype\":[[[\"F32\"]]],\"shape\":[1],\"data_offsets\":[0,4]}}")
              .message()),
      HasSubstr("dtype"));
  EXPECT_THAT(
      std::string(
          ParseHeader("{\"t\":{\"dtype\":\"F32\",\"shape\":[[[[1]]]],\"data_offsets\":[0,4]}}")
              .message()),
      HasSubstr("shape"));
}

}  // namespace
}  // namespace tandem::core
