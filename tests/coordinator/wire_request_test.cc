// CheckStringFields / ParseRequest: invalid UTF-8 anywhere in a request's bytes is an error naming
// the field by its path; malformed bytes are an error; valid bytes parse as the public message.
#include "coordinator/wire_request.h"

#include "gtest/gtest.h"
#include "tandem/v1/tandem.pb.h"

namespace tandem::coordinator {
namespace {

namespace v1 = ::tandem::v1;

std::string Field(int number, const std::string& payload) {
  std::string out;
  out.push_back(static_cast<char>((number << 3) | 2));
  out.push_back(static_cast<char>(payload.size()));  // < 128 here
  return out + payload;
}

TEST(WireRequestTest, ValidRequestParses) {
  v1::GenerateRequest r;
  r.set_text("héllo");
  r.mutable_stopping()->add_stop("a");
  r.mutable_stopping()->add_stop("ß");
  r.set_request_id("id-1");
  ::grpc::Slice slice(r.SerializeAsString());
  const ::grpc::ByteBuffer buffer(&slice, 1);
  v1::GenerateRequest parsed;
  ASSERT_TRUE(ParseRequest(buffer, &parsed).ok());
  EXPECT_EQ(parsed.SerializeAsString(), r.SerializeAsString());
}

TEST(WireRequestTest, InvalidUtf8IsNamedByPath) {
  const auto& type = *v1::GenerateRequest::descriptor();
  // stopping (4) { stop (3) "a", stop "b", stop "\xff" }
  const std::string stops = Field(3, "a") + Field(3, "b") + Field(3, "\xff");
  absl::Status s = CheckStringFields(Field(4, stops), type);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "stopping.stop[2]: is not valid UTF-8");
  s = CheckStringFields(Field(1, "ok\xc0\xaf"), type);  // an overlong '/'
  EXPECT_EQ(s.message(), "text: is not valid UTF-8");
  s = CheckStringFields(Field(7, "\xed\xa0\x80"), type);  // a surrogate
  EXPECT_EQ(s.message(), "request_id: is not valid UTF-8");
  s = CheckStringFields(Field(1, "x\xff"), *v1::AbortRequest::descriptor());
  EXPECT_EQ(s.message(), "request_ids[0]: is not valid UTF-8");
}

TEST(WireRequestTest, MalformedBytesAreInvalidArgument) {
  const auto& type = *v1::GenerateRequest::descriptor();
  for (const std::string bad :
       {std::string("\x0a\x05"
                    "ab",
                    4),
        std::string("\x22\x03\x1a\x05x", 5), std::string("\x08", 1), std::string("\x00\x00", 2)}) {
    const absl::Status s = CheckStringFields(bad, type);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message().rfind("request: not a valid tandem.v1.GenerateRequest", 0), 0u) << s;
  }
  EXPECT_TRUE(CheckStringFields("", type).ok());
}

TEST(WireRequestTest, MethodIndicesFollowTheProto) {
  EXPECT_EQ(TandemMethodIndex("Generate"), 0);
  EXPECT_EQ(TandemMethodIndex("GenerateStream"), 1);
  EXPECT_EQ(TandemMethodIndex("NoSuchMethod"), -1);
}

}  // namespace
}  // namespace tandem::coordinator
