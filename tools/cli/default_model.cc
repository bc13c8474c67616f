#include "tools/cli/default_model.h"

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

// The files are assembled into .rodata with .incbin (TANDEM_DEFAULT_MODEL_DIR, a string literal, is
// set by tools/cli/CMakeLists.txt, which also makes this file depend on them).
#define TANDEM_EMBED(sym, file)                                                                 \
  asm(".section .rodata\n.balign 64\n.global " #sym "_begin\n" #sym                             \
      "_begin:\n.incbin \"" TANDEM_DEFAULT_MODEL_DIR "/" file "\"\n.global " #sym "_end\n" #sym \
      "_end:\n.byte 0\n.previous\n");                                                           \
  extern "C" const char sym##_begin[];                                                          \
  extern "C" const char sym##_end[];

TANDEM_EMBED(tandem_default_config, "config.json")
TANDEM_EMBED(tandem_default_tokenizer, "tokenizer.json")
TANDEM_EMBED(tandem_default_safetensors, "model.safetensors")

namespace tandem::cli {

namespace fs = std::filesystem;

const EmbeddedFile* DefaultModelFiles(int* count) {
  static const EmbeddedFile files[] = {
      {"config.json", absl::string_view(tandem_default_config_begin,
                                        tandem_default_config_end - tandem_default_config_begin)},
      {"tokenizer.json",
       absl::string_view(tandem_default_tokenizer_begin,
                         tandem_default_tokenizer_end - tandem_default_tokenizer_begin)},
      {"model.safetensors",
       absl::string_view(tandem_default_safetensors_begin,
                         tandem_default_safetensors_end - tandem_default_safetensors_begin)},
  };
  *count = 3;
  return files;
}

namespace {

uint64_t Fnv1a(uint64_t h, absl::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string CacheRoot() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') return x;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    return absl::StrCat(h, "/.cache");
  }
  return "/tmp";
}

bool SameContents(const fs::path& path, absl::string_view bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) != bytes.size()) return false;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str() == bytes;
}

}  // namespace

absl::StatusOr<std::string> DefaultModelDir() {
  int count = 0;
  const EmbeddedFile* files = DefaultModelFiles(&count);
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (int i = 0; i < count; ++i) hash = Fnv1a(hash, files[i].bytes);
  const fs::path dir =
      fs::path(CacheRoot()) / "tandem" / absl::StrFormat("default-model-%016x", hash);
  bool present = true;
  for (int i = 0; i < count && present; ++i) {
    present = SameContents(dir / files[i].name, files[i].bytes);
  }
  if (present) return dir.string();

  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir.parent_path().string(),
                                                    " for the default model: ", ec.message()));
  }
  const fs::path tmp = dir.string() + absl::StrCat(".tmp-", getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));
  }
  for (int i = 0; i < count; ++i) {
    std::ofstream out(tmp / files[i].name, std::ios::binary);
    out.write(files[i].bytes.data(), static_cast<std::streamsize>(files[i].bytes.size()));
    out.close();
    if (!out) {
      fs::remove_all(tmp, ec);
      return absl::DataLossError(absl::StrCat("failed writing ", (tmp / files[i].name).string()));
    }
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    // `dir` exists: another process put its copy in place first (then it is complete: copies
    // are only ever renamed into place whole), or someone changed its files (replace them).
    bool complete = true;
    for (int i = 0; i < count && complete; ++i) {
      complete = SameContents(dir / files[i].name, files[i].bytes);
    }
    if (!complete) {
      fs::remove_all(dir, ec);
      fs::rename(tmp, dir, ec);
      if (ec) {
        fs::remove_all(tmp, ec);
        return absl::DataLossError(
            absl::StrCat("cannot put the default model in place at ", dir.string()));
      }
    }
    fs::remove_all(tmp, ec);
  }
  return dir.string();
}

}  // namespace tandem::cli
