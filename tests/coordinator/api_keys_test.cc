// API keys (coordinator/api_keys.h): the file format, Authenticate and CheckPriority.
#include "coordinator/api_keys.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ApiKeysTest, ParsesTheFileFormatAndNamesTheLineOfAnError) {
  auto keys = ParseApiKeys(
      "# comment\n\n  key-one-0123456789abc name=one allow_priority \nkey-two-0123456789abc\n",
      "keys.txt");
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].key, "key-one-0123456789abc");
  EXPECT_EQ((*keys)[0].name, "one");
  EXPECT_TRUE((*keys)[0].allow_priority);
  EXPECT_EQ((*keys)[1].name, "key4");
  EXPECT_FALSE((*keys)[1].allow_priority);

  const auto error = [](const std::string& text) {
    return std::string(ParseApiKeys(text, "keys.txt").status().message());
  };
  EXPECT_THAT(error("# x\nshort\n"), HasSubstr("keys.txt:2: the key has 5 characters"));
  EXPECT_THAT(error("key-one-0123456789abc allow_everything\n"),
              HasSubstr("keys.txt:1: unknown setting 'allow_everything'"));
  const std::string dup = error("key-one-0123456789abc\nkey-one-0123456789abc name=x\n");
  EXPECT_THAT(dup, HasSubstr("keys.txt:2: the key of 'x' appears twice"));
  EXPECT_THAT(dup, Not(HasSubstr("key-one")));  // errors never show a key
}

TEST(ApiKeysTest, AuthenticatesBearerTokensOnlyAndChecksPriority) {
  const std::string path = ::testing::TempDir() + "/api_keys_test_" + std::to_string(getpid());
  {
    std::ofstream f(path);
    f << "key-one-0123456789abc name=one\nkey-two-0123456789abc allow_priority\n";
  }
  auto keys = ApiKeys::FromFile(path);
  std::remove(path.c_str());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE((*keys)->enabled());
  auto one = (*keys)->Authenticate("Bearer key-one-0123456789abc");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->name, "one");
  EXPECT_EQ(one->owner, "key-one-0123456789abc");
  for (const char* bad : {"", "key-one-0123456789abc", "Bearer key-one-0123456789ab",
                          "Bearer key-one-0123456789abcd", "bearer key-one-0123456789abc"}) {
    auto r = (*keys)->Authenticate(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
  EXPECT_EQ(CheckPriority(*one, 1).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(CheckPriority(*one, 0).ok());
  EXPECT_TRUE(CheckPriority(*one, -5).ok());
  EXPECT_TRUE(CheckPriority(*(*keys)->Authenticate("Bearer key-two-0123456789abc"), 7).ok());

  auto open = ApiKeys::FromFile("");
  ASSERT_TRUE(open.ok());
  EXPECT_FALSE((*open)->enabled());
  auto anyone = (*open)->Authenticate("");
  ASSERT_TRUE(anyone.ok());
  EXPECT_EQ(anyone->owner, "");
  EXPECT_TRUE(anyone->allow_priority);
}

}  // namespace
}  // namespace tandem::coordinator
