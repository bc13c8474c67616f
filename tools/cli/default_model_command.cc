// tandem default-model: writes the built-in default model (embedded in the executable) where
// `tandem serve` without --model reads it, and prints that directory. For machines that run
// `tandem worker` for such a coordinator: the same XDG_CACHE_HOME gives the same path.
#include <cstdio>
#include <string>

#include "core/status.h"
#include "tools/cli/command.h"
#include "tools/cli/default_model.h"

namespace tandem::cli {
namespace {

constexpr char kName[] = "default-model";

absl::Status Run(const Args& args) {
  RETURN_IF_ERROR(args.CheckKnown({}));
  if (!args.positional().empty()) {
    return absl::InvalidArgumentError("default-model takes no arguments");
  }
  ASSIGN_OR_RETURN(const std::string dir, DefaultModelDir());
  std::printf("%s\n", dir.c_str());
  return absl::OkStatus();
}

TANDEM_COMMAND(kName,
               "write the built-in default model under $XDG_CACHE_HOME/tandem/ and print its "
               "directory",
               "\n\nThe directory is the one `tandem serve` without --model uses: "
               "$XDG_CACHE_HOME/tandem/default-model-<hash>\n(or ~/.cache/..., else /tmp/...), "
               "written once from the bytes embedded in this executable.",
               {}, [](const Args& args) {
                 absl::Status s = Run(args);
                 return s.ok() ? 0 : Fail(kName, s);
               });

}  // namespace
}  // namespace tandem::cli
