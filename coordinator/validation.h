// Request validation at the edge: every rule of issue 6's list, before anything is queued.
//
// A failing check returns INVALID_ARGUMENT whose message starts with the field's path in the
// request (e.g. "sampling.top_p: 1.5 is outside (0, 1]"). A request that fails never reaches a
// worker. ValidateRequest checks everything that does not need the tokenizer; ValidatePrompt checks
// the (tokenized) prompt against the vocabulary and the context limit.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "tandem/v1/tandem.pb.h"

namespace tandem::coordinator {

// A positive temperature below this divides logits into overflow; it is sampled as greedy (its
// limit). The workers apply the same bound (worker/sequence_sampling.h).
inline constexpr float kMinTemperature = 1e-6f;

struct ValidationLimits {
  int64_t vocab_size = 0;
  int64_t max_context = 0;  // prompt + generated positions
  int32_t max_new_tokens = 4096;
  int32_t default_max_new_tokens = 16;
  int32_t max_stop_strings = 16;
  int32_t max_stop_string_bytes = 256;
  int32_t max_top_logprobs = 20;
  int64_t max_prompt_text_bytes = 1 << 20;
};

// The effective max_new_tokens (the request's, or the default when 0).
int32_t EffectiveMaxNewTokens(const ::tandem::v1::GenerateRequest& request,
                              const ValidationLimits& limits);

[[nodiscard]] absl::Status ValidateRequest(const ::tandem::v1::GenerateRequest& request,
                                           const ValidationLimits& limits);

// `field` names the prompt in messages ("tokens.ids" or "text").
[[nodiscard]] absl::Status ValidatePrompt(const std::vector<int32_t>& prompt,
                                          int32_t max_new_tokens, const ValidationLimits& limits,
                                          const char* field);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool IsValidUtf8(const std::string& text);

}  // namespace tandem::coordinator
