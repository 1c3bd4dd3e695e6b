#include "server/grpc_status_util.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"

namespace bnserve {
namespace {

TEST(GrpcStatusUtilTest, StatusCodesMapNumberForNumber) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status status(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(static_cast<int>(converted.error_code()), code);
    if (code != 0) {
      EXPECT_EQ(converted.error_message(), "why");
    }
  }
}

TEST(GrpcStatusUtilTest, LongMessagesAreCutAtACharacterBoundary) {
  std::string utf8;
  for (int i = 0; i < 2000; ++i) utf8 += "\xC3\xA9";  // "é" x 2000
  for (const std::string& text : {std::string(5000, 'a'), utf8}) {
    const grpc::Status converted = ToGrpcStatus(absl::InvalidArgumentError(text));
    EXPECT_EQ(converted.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LE(converted.error_message().size(), kMaxErrorMessageBytes);
    EXPECT_TRUE(absl::EndsWith(converted.error_message(), "... (truncated)"));
    const std::string kept = converted.error_message().substr(
        0, converted.error_message().size() - std::string("... (truncated)").size());
    EXPECT_TRUE(absl::StartsWith(text, kept));
    if (text == utf8) {
      EXPECT_EQ(kept.size() % 2, 0u);  // no half character
    }
  }
  const std::string short_text(kMaxErrorMessageBytes, 'b');
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError(short_text)).error_message(), short_text);
}

}  // namespace
}  // namespace bnserve
