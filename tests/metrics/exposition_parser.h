// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests: it accepts
// what Prometheus' own parser accepts from an exporter like ours and rejects the mistakes an
// exporter can make (bad names, bad escapes, unknown escapes, samples before their TYPE, a family
// split in two, duplicate series, histogram buckets that are not cumulative or lack +Inf, _count
// not equal to the +Inf bucket). Independent of metrics/registry.cc on purpose: it is written from
// the format's specification, not from the renderer.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tandem::metrics::testing {

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram|summary|untyped
  std::map<std::string, std::string> help;
  // "name{a=\"x\",b=\"y\"}" (labels sorted, values unescaped then re-escaped canonically) -> value
  std::map<std::string, double> samples;

  double Get(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? std::nan("") : it->second;
  }
  // 0 when absent (counters that were never incremented may be missing).
  double GetOr0(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? 0.0 : it->second;
  }
};

namespace internal {

inline bool NameChar(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

inline size_t ParseName(const std::string& s, size_t i, bool colon) {
  size_t j = i;
  while (j < s.size() && NameChar(s[j], j == i, colon)) ++j;
  return j;
}

inline bool ParseValue(const std::string& text, double* v) {
  if (text == "+Inf" || text == "Inf") {
    *v = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *v = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *v = NAN;
    return true;
  }
  return absl::SimpleAtod(text, v) && !text.empty();
}

// The family a sample belongs to (histogram suffixes stripped when the family is a histogram).
inline std::string FamilyOf(const std::string& name,
                            const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace internal

inline absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  using internal::ParseName;
  Exposition out;
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the exposition does not end with a newline");
  }
  std::set<std::string> finished;  // families whose block has ended
  std::string current;             // the family of the previous line
  struct Hist {
    std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // labels -> (le, v)
    std::map<std::string, double> count, sum;
  };
  std::map<std::string, Hist> hists;
  int line_no = 0;
  for (absl::string_view line_view : absl::StrSplit(text, '\n')) {
    ++line_no;
    const std::string line(line_view);
    const std::string where = absl::StrCat("line ", line_no, " '", line, "': ");
    if (line.empty()) continue;
    std::string family;
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        family = parts[2];
        if (ParseName(family, 0, true) != family.size() || family.empty()) {
          return absl::InvalidArgumentError(where + "bad metric name");
        }
        const std::string rest = parts.size() > 3 ? parts[3] : "";
        if (parts[1] == "TYPE") {
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                       "untyped"};
          if (!kTypes.count(rest)) return absl::InvalidArgumentError(where + "unknown type");
          if (out.types.count(family)) return absl::InvalidArgumentError(where + "second TYPE");
          if (family == current && out.samples.size() > 0) {
            // A TYPE after samples of its own family.
            for (const auto& [k, v] : out.samples) {
              if (k.rfind(family, 0) == 0) {
                return absl::InvalidArgumentError(where + "TYPE after samples");
              }
            }
          }
          out.types[family] = rest;
        } else {
          if (out.help.count(family)) return absl::InvalidArgumentError(where + "second HELP");
          for (size_t i = 0; i < rest.size(); ++i) {
            if (rest[i] == '\\') {
              if (i + 1 >= rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n')) {
                return absl::InvalidArgumentError(where + "bad escape in HELP");
              }
              ++i;
            }
          }
          out.help[family] = rest;
        }
      } else {
        continue;  // a comment
      }
    } else {
      size_t i = ParseName(line, 0, true);
      if (i == 0) return absl::InvalidArgumentError(where + "bad metric name");
      const std::string name = line.substr(0, i);
      std::map<std::string, std::string> labels;
      if (i < line.size() && line[i] == '{') {
        ++i;
        while (i < line.size() && line[i] != '}') {
          const size_t j = ParseName(line, i, false);
          if (j == i) return absl::InvalidArgumentError(where + "bad label name");
          const std::string key = line.substr(i, j - i);
          if (key.rfind("__", 0) == 0) return absl::InvalidArgumentError(where + "reserved label");
          i = j;
          if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
            return absl::InvalidArgumentError(where + "expected =\"");
          }
          i += 2;
          std::string value;
          while (i < line.size() && line[i] != '"') {
            if (line[i] == '\\') {
              if (i + 1 >= line.size()) return absl::InvalidArgumentError(where + "bad escape");
              const char e = line[i + 1];
              if (e == '\\') {
                value += '\\';
              } else if (e == '"') {
                value += '"';
              } else if (e == 'n') {
                value += '\n';
              } else {
                return absl::InvalidArgumentError(where + "unknown escape in a label value");
              }
              i += 2;
            } else {
              value += line[i++];
            }
          }
          if (i >= line.size()) return absl::InvalidArgumentError(where + "unterminated value");
          ++i;  // closing quote
          if (!labels.emplace(key, value).second) {
            return absl::InvalidArgumentError(where + "duplicate label " + key);
          }
          if (i < line.size() && line[i] == ',') ++i;
        }
        if (i >= line.size()) return absl::InvalidArgumentError(where + "unterminated labels");
        ++i;  // '}'
      }
      if (i >= line.size() || line[i] != ' ') {
        return absl::InvalidArgumentError(where + "expected a space before the value");
      }
      std::vector<std::string> rest = absl::StrSplit(line.substr(i + 1), ' ');
      if (rest.empty() || rest.size() > 2) return absl::InvalidArgumentError(where + "bad value");
      double v = 0;
      if (!internal::ParseValue(rest[0], &v)) {
        return absl::InvalidArgumentError(where + "bad value '" + rest[0] + "'");
      }
      if (rest.size() == 2) {
        int64_t ts;
        if (!absl::SimpleAtoi(rest[1], &ts)) return absl::InvalidArgumentError(where + "bad time");
      }
      family = internal::FamilyOf(name, out.types);
      if (!out.types.count(family)) {
        return absl::InvalidArgumentError(where + "sample without a TYPE line before it");
      }
      const std::string& type = out.types[family];
      if (type == "counter" && (v < 0 || std::isnan(v))) {
        return absl::InvalidArgumentError(where + "negative or NaN counter");
      }
      std::string le;
      if (type == "histogram") {
        if (name == family + "_bucket") {
          if (!labels.count("le")) return absl::InvalidArgumentError(where + "bucket without le");
          le = labels["le"];
          labels.erase("le");
        } else if (name != family + "_sum" && name != family + "_count") {
          return absl::InvalidArgumentError(where + "bad histogram sample name");
        }
      }
      std::string key = name;
      std::string label_key;
      if (!labels.empty()) {
        label_key = "{";
        bool first = true;
        for (const auto& [k, val] : labels) {
          if (!first) label_key += ",";
          first = false;
          std::string esc;
          for (char c : val) {
            if (c == '\\') {
              esc += "\\\\";
            } else if (c == '"') {
              esc += "\\\"";
            } else if (c == '\n') {
              esc += "\\n";
            } else {
              esc += c;
            }
          }
          label_key += k + "=\"" + esc + "\"";
        }
        label_key += "}";
      }
      if (type == "histogram") {
        Hist& h = hists[family];
        if (name == family + "_bucket") {
          double bound = 0;
          if (!internal::ParseValue(le, &bound)) {
            return absl::InvalidArgumentError(where + "bad le '" + le + "'");
          }
          auto& b = h.buckets[label_key];
          if (!b.empty() && !(b.back().first < bound)) {
            return absl::InvalidArgumentError(where + "le not increasing");
          }
          if (!b.empty() && v < b.back().second) {
            return absl::InvalidArgumentError(where + "buckets not cumulative");
          }
          b.emplace_back(bound, v);
          key += label_key.empty()
                     ? "{le=\"" + le + "\"}"
                     : label_key.substr(0, label_key.size() - 1) + ",le=\"" + le + "\"}";
        } else if (name == family + "_count") {
          h.count[label_key] = v;
          key += label_key;
        } else {
          h.sum[label_key] = v;
          key += label_key;
        }
      } else {
        key += label_key;
      }
      if (!out.samples.emplace(key, v).second) {
        return absl::InvalidArgumentError(where + "duplicate series " + key);
      }
    }
    if (family != current) {
      if (finished.count(family)) {
        return absl::InvalidArgumentError(where + "family " + family + " appears in two blocks");
      }
      if (!current.empty()) finished.insert(current);
      current = family;
    }
  }
  for (const auto& [family, h] : hists) {
    for (const auto& [labels, b] : h.buckets) {
      if (b.empty() || !std::isinf(b.back().first)) {
        return absl::InvalidArgumentError(family + labels + ": no +Inf bucket");
      }
      auto c = h.count.find(labels);
      if (c == h.count.end() || c->second != b.back().second) {
        return absl::InvalidArgumentError(family + labels + ": _count is not the +Inf bucket");
      }
      if (!h.sum.count(labels)) return absl::InvalidArgumentError(family + labels + ": no _sum");
    }
  }
  return out;
}

}  // namespace tandem::metrics::testing
