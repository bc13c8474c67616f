#include "coordinator/validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace tandem::coordinator {
namespace {

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

}  // namespace

bool IsValidUtf8(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

int32_t EffectiveMaxNewTokens(const ::tandem::v1::GenerateRequest& request,
                              const ValidationLimits& limits) {
  const int32_t requested = request.stopping().max_new_tokens();
  return requested == 0 ? limits.default_max_new_tokens : requested;
}

absl::Status ValidateRequest(const ::tandem::v1::GenerateRequest& request,
                             const ValidationLimits& limits) {
  using ::tandem::v1::GenerateRequest;
  switch (request.input_case()) {
    case GenerateRequest::kText:
      if (request.text().empty()) return Invalid("text", "the prompt is empty");
      if (static_cast<int64_t>(request.text().size()) > limits.max_prompt_text_bytes) {
        return Invalid("text", absl::StrCat(request.text().size(), " bytes exceed the limit of ",
                                            limits.max_prompt_text_bytes));
      }
      if (!IsValidUtf8(request.text())) return Invalid("text", "is not valid UTF-8");
      break;
    case GenerateRequest::kTokens:
      if (request.tokens().ids().empty()) return Invalid("tokens.ids", "the prompt is empty");
      for (int i = 0; i < request.tokens().ids_size(); ++i) {
        const int32_t id = request.tokens().ids(i);
        if (id < 0 || id >= limits.vocab_size) {
          return Invalid(
              absl::StrCat("tokens.ids[", i, "]"),
              absl::StrCat(id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
        }
      }
      break;
    default:
      return Invalid("input", "set either text or tokens (the prompt is empty)");
  }

  const auto& sp = request.sampling();
  if (sp.has_temperature() && (!std::isfinite(sp.temperature()) || sp.temperature() < 0.0f)) {
    return Invalid("sampling.temperature",
                   absl::StrCat(sp.temperature(), " must be finite and >= 0"));
  }
  if (sp.top_k() < 0) {
    return Invalid("sampling.top_k", absl::StrCat(sp.top_k(), " must be >= 0 (0 = off)"));
  }
  if (sp.has_top_p() && !(sp.top_p() > 0.0f && sp.top_p() <= 1.0f)) {
    return Invalid("sampling.top_p", absl::StrCat(sp.top_p(), " is outside (0, 1]"));
  }
  if (!(sp.min_p() >= 0.0f && sp.min_p() <= 1.0f)) {
    return Invalid("sampling.min_p", absl::StrCat(sp.min_p(), " is outside [0, 1]"));
  }
  if (sp.has_repetition_penalty() &&
      !(std::isfinite(sp.repetition_penalty()) && sp.repetition_penalty() > 0.0f &&
        sp.repetition_penalty() <= 10.0f)) {
    return Invalid("sampling.repetition_penalty",
                   absl::StrCat(sp.repetition_penalty(), " is outside (0, 10]"));
  }
  if (!(sp.presence_penalty() >= -2.0f && sp.presence_penalty() <= 2.0f)) {
    return Invalid("sampling.presence_penalty",
                   absl::StrCat(sp.presence_penalty(), " is outside [-2, 2]"));
  }
  if (!(sp.frequency_penalty() >= -2.0f && sp.frequency_penalty() <= 2.0f)) {
    return Invalid("sampling.frequency_penalty",
                   absl::StrCat(sp.frequency_penalty(), " is outside [-2, 2]"));
  }

  const auto& st = request.stopping();
  if (st.max_new_tokens() < 0 || st.max_new_tokens() > limits.max_new_tokens) {
    return Invalid("stopping.max_new_tokens",
                   absl::StrCat(st.max_new_tokens(), " is outside [1, ", limits.max_new_tokens,
                                "] (0 = the default)"));
  }
  const int32_t max_new = EffectiveMaxNewTokens(request, limits);
  if (st.min_new_tokens() < 0 || st.min_new_tokens() > max_new) {
    return Invalid(
        "stopping.min_new_tokens",
        absl::StrCat(st.min_new_tokens(), " is outside [0, max_new_tokens = ", max_new, "]"));
  }
  if (st.stop_size() > limits.max_stop_strings) {
    return Invalid("stopping.stop",
                   absl::StrCat(st.stop_size(), " stop strings exceed the limit of ",
                                limits.max_stop_strings));
  }
  for (int i = 0; i < st.stop_size(); ++i) {
    const std::string field = absl::StrCat("stopping.stop[", i, "]");
    if (st.stop(i).empty()) return Invalid(field, "is empty");
    if (static_cast<int32_t>(st.stop(i).size()) > limits.max_stop_string_bytes) {
      return Invalid(field, absl::StrCat(st.stop(i).size(), " bytes exceed the limit of ",
                                         limits.max_stop_string_bytes));
    }
    if (!IsValidUtf8(st.stop(i))) return Invalid(field, "is not valid UTF-8");
  }
  for (int i = 0; i < st.stop_token_ids_size(); ++i) {
    const int32_t id = st.stop_token_ids(i);
    if (id < 0 || id >= limits.vocab_size) {
      return Invalid(absl::StrCat("stopping.stop_token_ids[", i, "]"),
                     absl::StrCat(id, " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }

  const auto& lp = request.logprobs();
  if (lp.top_logprobs() < 0 || lp.top_logprobs() > limits.max_top_logprobs) {
    return Invalid("logprobs.top_logprobs", absl::StrCat(lp.top_logprobs(), " is outside [0, ",
                                                         limits.max_top_logprobs, "]"));
  }
  if (request.time_limit_ms() < 0) {
    return Invalid("time_limit_ms", absl::StrCat(request.time_limit_ms(), " must be >= 0"));
  }
  if (request.request_id().size() > 256) {
    return Invalid("request_id",
                   absl::StrCat(request.request_id().size(), " bytes exceed the limit of 256"));
  }
  if (request.input_case() == GenerateRequest::kTokens) {
    const int64_t total = request.tokens().ids_size() + static_cast<int64_t>(max_new);
    if (total > limits.max_context) {
      return Invalid(
          "stopping.max_new_tokens",
          absl::StrCat("prompt (", request.tokens().ids_size(), ") + max_new_tokens (", max_new,
                       ") = ", total, " exceeds the model's context of ", limits.max_context));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePrompt(const std::vector<int32_t>& prompt, int32_t max_new_tokens,
                            const ValidationLimits& limits, const char* field) {
  if (prompt.empty()) return Invalid(field, "the prompt is empty");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= limits.vocab_size) {
      return Invalid(
          absl::StrCat(field, "[", i, "]"),
          absl::StrCat(prompt[i], " is outside the vocabulary [0, ", limits.vocab_size, ")"));
    }
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  if (total > limits.max_context) {
    return Invalid(
        "stopping.max_new_tokens",
        absl::StrCat("prompt (", prompt.size(), ") + max_new_tokens (", max_new_tokens,
                     ") = ", total, " exceeds the model's context of ", limits.max_context));
  }
  return absl::OkStatus();
}

}  // namespace tandem::coordinator
