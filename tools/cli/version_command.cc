// tandem version: the version, the git commit it was configured from, the build type and the
// backends compiled in (fixed when CMake configures: reconfigure after committing to refresh the
// commit).
#include <cstdio>

#include "tools/cli/command.h"

namespace tandem::cli {
namespace {

TANDEM_COMMAND("version", "print the version, git commit, build type and backends",
               "\n\nPrints one key: value line each for version, commit, build_type and backends "
               "(comma-separated: cpu, cuda, nccl, ucx, gloo). No options.",
               {}, [](const Args& args) {
                 if (!args.positional().empty() || !args.CheckKnown({}).ok()) {
                   std::fprintf(stderr, "tandem version: takes no arguments\n");
                   return 2;
                 }
                 std::printf("version: %s\ncommit: %s\nbuild_type: %s\nbackends: %s\n",
                             TANDEM_VERSION, TANDEM_GIT_COMMIT, TANDEM_BUILD_TYPE, TANDEM_BACKENDS);
                 return 0;
               });

}  // namespace
}  // namespace tandem::cli
