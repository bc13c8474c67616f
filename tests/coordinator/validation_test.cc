#include "coordinator/validation.h"

#include <cmath>
#include <functional>
#include <limits>

#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

using ::tandem::v1::GenerateRequest;

ValidationLimits Limits() {
  ValidationLimits l;
  l.vocab_size = 100;
  l.max_context = 64;
  l.max_new_tokens = 32;
  l.default_max_new_tokens = 8;
  l.max_stop_strings = 2;
  l.max_stop_string_bytes = 8;
  l.max_top_logprobs = 5;
  l.max_prompt_text_bytes = 1000;
  return l;
}

GenerateRequest Valid() {
  GenerateRequest r;
  r.mutable_tokens()->add_ids(1);
  r.mutable_tokens()->add_ids(99);
  r.mutable_sampling()->set_temperature(0.7f);
  r.mutable_sampling()->set_top_k(5);
  r.mutable_sampling()->set_top_p(1.0f);
  r.mutable_sampling()->set_min_p(0.1f);
  r.mutable_stopping()->set_max_new_tokens(10);
  r.mutable_stopping()->set_min_new_tokens(10);
  r.mutable_stopping()->add_stop("ab");
  r.mutable_logprobs()->set_top_logprobs(5);
  return r;
}

struct Case {
  const char* name;
  const char* field;
  std::function<void(GenerateRequest&)> mutate;
};

TEST(ValidationTest, AValidRequestPasses) {
  EXPECT_TRUE(ValidateRequest(Valid(), Limits()).ok());
  GenerateRequest text;
  text.set_text("héllo");
  EXPECT_TRUE(ValidateRequest(text, Limits()).ok());
}

TEST(ValidationTest, EveryInvalidCaseNamesItsField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<Case> cases = {
      {"no input", "input", [](GenerateRequest& r) { r.clear_input(); }},
      {"empty token prompt", "tokens.ids",
       [](GenerateRequest& r) { r.mutable_tokens()->clear_ids(); }},
      {"empty text prompt", "text", [](GenerateRequest& r) { r.set_text(""); }},
      {"token id >= vocab", "tokens.ids[1]",
       [](GenerateRequest& r) { r.mutable_tokens()->set_ids(1, 100); }},
      {"negative token id", "tokens.ids[0]",
       [](GenerateRequest& r) { r.mutable_tokens()->set_ids(0, -1); }},
      {"prompt + max_new beyond the context", "stopping.max_new_tokens",
       [](GenerateRequest& r) {
         for (int i = 0; i < 60; ++i) r.mutable_tokens()->add_ids(3);
       }},
      {"temperature < 0", "sampling.temperature",
       [](GenerateRequest& r) { r.mutable_sampling()->set_temperature(-0.1f); }},
      {"temperature NaN", "sampling.temperature",
       [nan](GenerateRequest& r) { r.mutable_sampling()->set_temperature(nan); }},
      {"temperature inf", "sampling.temperature",
       [inf](GenerateRequest& r) { r.mutable_sampling()->set_temperature(inf); }},
      {"top_p 0", "sampling.top_p",
       [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(0.0f); }},
      {"top_p > 1", "sampling.top_p",
       [](GenerateRequest& r) { r.mutable_sampling()->set_top_p(1.5f); }},
      {"top_p NaN", "sampling.top_p",
       [nan](GenerateRequest& r) { r.mutable_sampling()->set_top_p(nan); }},
      {"top_k < 0", "sampling.top_k",
       [](GenerateRequest& r) { r.mutable_sampling()->set_top_k(-1); }},
      {"min_p < 0", "sampling.min_p",
       [](GenerateRequest& r) { r.mutable_sampling()->set_min_p(-0.5f); }},
      {"min_p > 1", "sampling.min_p",
       [](GenerateRequest& r) { r.mutable_sampling()->set_min_p(1.01f); }},
      {"repetition_penalty 0", "sampling.repetition_penalty",
       [](GenerateRequest& r) { r.mutable_sampling()->set_repetition_penalty(0.0f); }},
      {"repetition_penalty huge", "sampling.repetition_penalty",
       [](GenerateRequest& r) { r.mutable_sampling()->set_repetition_penalty(11.0f); }},
      {"presence_penalty", "sampling.presence_penalty",
       [](GenerateRequest& r) { r.mutable_sampling()->set_presence_penalty(2.5f); }},
      {"frequency_penalty", "sampling.frequency_penalty",
       [nan](GenerateRequest& r) { r.mutable_sampling()->set_frequency_penalty(nan); }},
      {"max_new_tokens < 0", "stopping.max_new_tokens",
       [](GenerateRequest& r) { r.mutable_stopping()->set_max_new_tokens(-1); }},
      {"max_new_tokens above the limit", "stopping.max_new_tokens",
       [](GenerateRequest& r) { r.mutable_stopping()->set_max_new_tokens(33); }},
      {"min > max new tokens", "stopping.min_new_tokens",
       [](GenerateRequest& r) { r.mutable_stopping()->set_min_new_tokens(11); }},
      {"min > default max new tokens", "stopping.min_new_tokens",
       [](GenerateRequest& r) {
         r.mutable_stopping()->set_max_new_tokens(0);
         r.mutable_stopping()->set_min_new_tokens(9);
       }},
      {"too many stop strings", "stopping.stop",
       [](GenerateRequest& r) {
         r.mutable_stopping()->add_stop("x");
         r.mutable_stopping()->add_stop("y");
       }},
      {"empty stop string", "stopping.stop[1]",
       [](GenerateRequest& r) { r.mutable_stopping()->add_stop(""); }},
      {"oversized stop string", "stopping.stop[0]",
       [](GenerateRequest& r) { r.mutable_stopping()->set_stop(0, "123456789"); }},
      {"stop string not UTF-8", "stopping.stop[0]",
       [](GenerateRequest& r) { r.mutable_stopping()->set_stop(0, "\xff"); }},
      {"stop token id >= vocab", "stopping.stop_token_ids[0]",
       [](GenerateRequest& r) { r.mutable_stopping()->add_stop_token_ids(100); }},
      {"top_logprobs above the limit", "logprobs.top_logprobs",
       [](GenerateRequest& r) { r.mutable_logprobs()->set_top_logprobs(6); }},
      {"top_logprobs < 0", "logprobs.top_logprobs",
       [](GenerateRequest& r) { r.mutable_logprobs()->set_top_logprobs(-1); }},
      {"invalid UTF-8 text", "text", [](GenerateRequest& r) { r.set_text("ab\xc3"); }},
      {"overlong UTF-8", "text", [](GenerateRequest& r) { r.set_text("\xc0\xaf"); }},
      {"UTF-8 surrogate", "text", [](GenerateRequest& r) { r.set_text("\xed\xa0\x80"); }},
      {"oversized text", "text", [](GenerateRequest& r) { r.set_text(std::string(1001, 'a')); }},
      {"negative time limit", "time_limit_ms", [](GenerateRequest& r) { r.set_time_limit_ms(-5); }},
  };
  for (const Case& c : cases) {
    GenerateRequest r = Valid();
    c.mutate(r);
    const absl::Status s = ValidateRequest(r, Limits());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name << ": " << s;
    EXPECT_EQ(s.message().substr(0, std::string(c.field).size() + 1), std::string(c.field) + ":")
        << c.name << ": " << s;
  }
}

TEST(ValidationTest, PromptAfterTokenization) {
  const ValidationLimits l = Limits();
  EXPECT_TRUE(ValidatePrompt({1, 2, 3}, 10, l, "text").ok());
  EXPECT_EQ(ValidatePrompt({}, 10, l, "text").code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = ValidatePrompt({1, 200}, 10, l, "text");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("text[1]"), std::string::npos) << s;
  s = ValidatePrompt(std::vector<int32_t>(60, 1), 10, l, "text");
  EXPECT_NE(s.message().find("stopping.max_new_tokens"), std::string::npos) << s;
  EXPECT_TRUE(ValidatePrompt(std::vector<int32_t>(54, 1), 10, l, "text").ok());
}

TEST(ValidationTest, Utf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
}

}  // namespace
}  // namespace tandem::coordinator
