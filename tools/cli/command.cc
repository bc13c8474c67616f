#include "tools/cli/command.h"

#include <cstdio>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tandem::cli {

absl::StatusOr<Args> Args::Parse(int argc, char** argv, const std::set<std::string>& flags) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      const size_t eq = key.find('=');
      if (eq != std::string::npos) {
        args.values_[key.substr(0, eq)] = key.substr(eq + 1);
      } else if (flags.count(key)) {
        args.values_[key] = "true";
      } else if (i + 1 < argc) {
        args.values_[key] = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("option --", key, " needs a value"));
      }
    } else {
      args.positional_.push_back(a);
    }
  }
  return args;
}

std::optional<std::string> Args::Get(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::GetOr(const std::string& key, const std::string& fallback) const {
  return Get(key).value_or(fallback);
}

absl::StatusOr<int64_t> Args::GetInt(const std::string& key, int64_t fallback) const {
  auto v = Get(key);
  if (!v) return fallback;
  int64_t out;
  if (!absl::SimpleAtoi(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, ": '", *v, "' is not an integer"));
  }
  return out;
}

absl::StatusOr<double> Args::GetDouble(const std::string& key, double fallback) const {
  auto v = Get(key);
  if (!v) return fallback;
  double out;
  if (!absl::SimpleAtod(*v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, ": '", *v, "' is not a number"));
  }
  return out;
}

absl::Status Args::CheckKnown(const std::set<std::string>& known) const {
  for (const auto& [key, value] : values_) {
    if (!known.count(key))
      return absl::InvalidArgumentError(absl::StrCat("unknown option --", key));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ParseIdList(const std::string& text, const std::string& what) {
  std::vector<int64_t> ids;
  if (absl::StripAsciiWhitespace(text).empty()) return ids;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t id;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": '", part, "' is not an integer token id"));
    }
    ids.push_back(id);
  }
  return ids;
}

std::map<std::string, Command>& CommandRegistry() {
  static auto* registry = new std::map<std::string, Command>();
  return *registry;
}

CommandRegistrar::CommandRegistrar(Command command) {
  std::string name = command.name;
  CommandRegistry().emplace(std::move(name), std::move(command));
}

int Fail(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "tandem %s: %s\n", command.c_str(), std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

std::string SourceTreeTokenizer() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
       dir = dir.parent_path()) {
    const fs::path candidate = dir / "tests" / "testdata" / "tokenizer" / "tokenizer.json";
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  }
  return "";
}

}  // namespace tandem::cli
