// The `tandem` command line: sub-commands register themselves with TANDEM_COMMAND.
//
// Each sub-command lives in its own file in tools/cli/ and is a function
// `int Run(const Args& args)` returning the process exit code. Args is a tiny parser for
// `--key value`, `--key=value`, `--flag` and positional arguments. Not thread-safe (main only).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tandem::cli {

class Args {
 public:
  // `flags` are the option names that take no value (e.g. "json", "stream").
  static absl::StatusOr<Args> Parse(int argc, char** argv, const std::set<std::string>& flags);

  const std::vector<std::string>& positional() const { return positional_; }
  bool Has(const std::string& key) const { return values_.count(key) > 0; }
  std::optional<std::string> Get(const std::string& key) const;
  std::string GetOr(const std::string& key, const std::string& fallback) const;
  absl::StatusOr<int64_t> GetInt(const std::string& key, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& key, double fallback) const;
  // Fails naming the first option not in `known` (flags and valued options together).
  absl::Status CheckKnown(const std::set<std::string>& known) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::string> values_;
};

// Parses "1,2,3" into ids; an empty string gives an empty list; names `what` in errors.
absl::StatusOr<std::vector<int64_t>> ParseIdList(const std::string& text, const std::string& what);

struct Command {
  std::string name;
  std::string summary;
  std::string usage;
  std::set<std::string> flags;  // options without a value
  std::function<int(const Args&)> run;
};

std::map<std::string, Command>& CommandRegistry();

struct CommandRegistrar {
  explicit CommandRegistrar(Command command);
};

// Prints "tandem <name>: <status message>" to stderr and returns exit code 1 (2 for usage).
int Fail(const std::string& command, const absl::Status& status);

// The tokenizer checked into the source tree (tests/testdata/tokenizer/tokenizer.json), found
// from the executable's location (<repo>/<build dir>/bin/tandem); empty if there is none.
std::string SourceTreeTokenizer();

}  // namespace tandem::cli

#define TANDEM_CLI_CONCAT_INNER_(a, b) a##b
#define TANDEM_CLI_CONCAT_(a, b) TANDEM_CLI_CONCAT_INNER_(a, b)
#define TANDEM_COMMAND(...)                                  \
  static ::tandem::cli::CommandRegistrar TANDEM_CLI_CONCAT_( \
      tandem_command_, __LINE__)(::tandem::cli::Command{__VA_ARGS__})
