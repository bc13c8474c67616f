// tandem: the single command-line entry point (sub-commands in tools/cli/*_command.cc).
#include <cstdio>
#include <cstring>
#include <string>

#include "core/crash_handler.h"
#include "tools/cli/command.h"
#include "tools/cli/test_crash.h"

namespace {

void PrintHelp() {
  std::printf(
      "tandem: serve Nemotron-H hybrid Mamba-Transformer models\n\nusage: tandem <command> "
      "[options]\n\ncommands:\n");
  for (const auto& [name, command] : tandem::cli::CommandRegistry()) {
    std::printf("  %-18s %s\n", name.c_str(), command.summary.c_str());
  }
  std::printf("\n'tandem <command> --help' shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  // First, before any thread or UCX use: a crash must kill the process, never hang it
  // (core/crash_handler.h).
  tandem::core::InstallCrashHandler("tandem");
  tandem::cli::MaybeArmTestCrash();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    PrintHelp();
    return argc < 2 ? 2 : 0;
  }
  auto& registry = tandem::cli::CommandRegistry();
  auto it = registry.find(argv[1]);
  if (it == registry.end()) {
    std::fprintf(stderr, "tandem: unknown command '%s'\n", argv[1]);
    PrintHelp();
    return 2;
  }
  const auto& command = it->second;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf("usage: tandem %s %s\n\n%s\n", command.name.c_str(), command.usage.c_str(),
                  command.summary.c_str());
      return 0;
    }
  }
  auto args = tandem::cli::Args::Parse(argc - 2, argv + 2, command.flags);
  if (!args.ok()) return tandem::cli::Fail(command.name, args.status());
  return command.run(*args);
}
