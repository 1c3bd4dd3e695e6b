// GoogleTest helpers for absl::Status, which Abseil 20220623 does not ship.
//
//   EXPECT_THAT(status, IsOk());
//   EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kInvalidArgument));
//   EXPECT_THAT(status_or, IsOkAndHolds("ipv4:127.0.0.1:1"));
//   EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-9")));
//   ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 1));
#ifndef BNSERVE_TESTS_TESTING_STATUS_MATCHERS_H_
#define BNSERVE_TESTS_TESTING_STATUS_MATCHERS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace bnserve {
namespace testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status: " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code;
}

// An OK StatusOr whose value matches `matcher` (a value or a matcher).
MATCHER_P(IsOkAndHolds, matcher,
          "is OK and holds " + ::testing::PrintToString(matcher)) {
  if (!arg.ok()) {
    *result_listener << "status: " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(matcher, *arg, result_listener);
}

// The code and a matcher of the message.
MATCHER_P2(StatusIs, code, message_matcher,
           "has status code " + absl::StatusCodeToString(code) + " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code &&
         ::testing::Matches(message_matcher)(std::string(status.message()));
}

}  // namespace testing
}  // namespace bnserve

#define BNSERVE_TESTING_CONCAT_INNER_(a, b) a##b
#define BNSERVE_TESTING_CONCAT_(a, b) BNSERVE_TESTING_CONCAT_INNER_(a, b)
#define ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, expr)        \
  auto statusor = (expr);                                      \
  ASSERT_TRUE(statusor.ok()) << "status: " << statusor.status(); \
  lhs = std::move(statusor).value()
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(BNSERVE_TESTING_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::bnserve::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::bnserve::testing::IsOk())

#endif  // BNSERVE_TESTS_TESTING_STATUS_MATCHERS_H_
