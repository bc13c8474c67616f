// The built-in default model: a small trained Nemotron-H (models/default/ in the source tree,
// docs/models.md) whose config.json, tokenizer.json and model.safetensors are embedded into the
// `tandem` executable when it is built, so a copied `tandem` alone still has it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tandem::cli {

// One embedded file of the default model.
struct EmbeddedFile {
  const char* name;
  absl::string_view bytes;
};

// config.json, tokenizer.json, model.safetensors as embedded at build time.
const EmbeddedFile* DefaultModelFiles(int* count);

// A directory holding the default model: $XDG_CACHE_HOME/tandem/default-model-<hash> (or
// ~/.cache/..., else /tmp/...), written from the embedded bytes on first use (atomically: a
// temporary directory renamed into place) and reused while its files equal the embedded ones.
// <hash> is the FNV-1a 64 of the embedded bytes, so a rebuilt model gets a new directory.
[[nodiscard]] absl::StatusOr<std::string> DefaultModelDir();

}  // namespace tandem::cli
