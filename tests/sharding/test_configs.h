// Model configs for the sharding tests: the shipped real configs and variants of them.
#pragma once

#include <string>

#include "core/model_config.h"
#include "gtest/gtest.h"

namespace tandem::sharding {

inline core::ModelConfig LoadShippedConfig(const std::string& name) {
  auto config = core::ModelConfig::FromFile(std::string(TANDEM_SOURCE_DIR) + "/configs/" + name +
                                            "/config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : core::ModelConfig{};
}

// The 8B config with another hybrid pattern (layer kinds and count).
inline core::ModelConfig WithPattern(core::ModelConfig c, const std::string& pattern) {
  c.hybrid_override_pattern = pattern;
  c.num_hidden_layers = static_cast<int64_t>(pattern.size());
  c.layers.clear();
  for (char ch : pattern) c.layers.push_back(static_cast<core::LayerKind>(ch));
  return c;
}

}  // namespace tandem::sharding
