// Reading tests/testdata/tokenizer/ (written by tools/reference/tokenizer/make_tokenizer.py).
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tandem::tokenizer::testing {

inline std::string TestDataPath(const std::string& name) {
  return std::string(TANDEM_SOURCE_DIR) + "/tests/testdata/tokenizer/" + name;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct IdsGolden {
  std::string file;
  bool add_special_tokens;
  bool roundtrips;
  std::vector<int32_t> ids;
};

// goldens/<name>.ids: file<TAB>add<TAB>roundtrips<TAB>count<TAB>payload (2 base64 chars per id).
inline std::vector<IdsGolden> ReadIdsGoldens(const std::string& name) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::vector<IdsGolden> out;
  std::istringstream in(ReadFile(TestDataPath("goldens/" + name + ".ids")));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() != 5) continue;
    IdsGolden g{f[0], f[1] == "1", f[2] == "1", {}};
    for (size_t i = 0; i + 1 < f[4].size(); i += 2) {
      g.ids.push_back(
          static_cast<int32_t>(kAlphabet.find(f[4][i]) * 64 + kAlphabet.find(f[4][i + 1])));
    }
    out.push_back(std::move(g));
  }
  return out;
}

struct DecodeGolden {
  bool skip_special_tokens;
  std::vector<int32_t> ids;
  std::string text;
};

// goldens/<name>.decode: skip<TAB>ids<TAB>hex of the UTF-8 text.
inline std::vector<DecodeGolden> ReadDecodeGoldens(const std::string& name) {
  std::vector<DecodeGolden> out;
  std::istringstream in(ReadFile(TestDataPath("goldens/" + name + ".decode")));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() != 3) continue;
    DecodeGolden g{f[0] == "1", {}, {}};
    for (absl::string_view id : absl::StrSplit(f[1], ',', absl::SkipEmpty())) {
      int32_t v = 0;
      if (absl::SimpleAtoi(id, &v)) g.ids.push_back(v);
    }
    for (size_t i = 0; i + 1 < f[2].size(); i += 2) {
      g.text.push_back(static_cast<char>(std::stoi(f[2].substr(i, 2), nullptr, 16)));
    }
    out.push_back(std::move(g));
  }
  return out;
}

}  // namespace tandem::tokenizer::testing
