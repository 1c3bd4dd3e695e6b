// Unit tests of GrpcTarget: how bnctl's --server becomes a gRPC target
// (one address, a list of replicas, a dns:/// name).
#include "client/client_connection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;

TEST(GrpcTargetTest, OneAddressOrASchemeTargetPassesUnchanged) {
  EXPECT_THAT(GrpcTarget("127.0.0.1:50051"), IsOkAndHolds("127.0.0.1:50051"));
  EXPECT_THAT(GrpcTarget("bnserve:50051"), IsOkAndHolds("bnserve:50051"));
  EXPECT_THAT(GrpcTarget(" [::1]:50051 "), IsOkAndHolds("[::1]:50051"));
  EXPECT_THAT(GrpcTarget("dns:///bnserve-grpc.ml.svc.cluster.local:50051"),
              IsOkAndHolds("dns:///bnserve-grpc.ml.svc.cluster.local:50051"));
  EXPECT_THAT(GrpcTarget("ipv4:10.0.0.1:1,10.0.0.2:2"), IsOkAndHolds("ipv4:10.0.0.1:1,10.0.0.2:2"));
  EXPECT_THAT(GrpcTarget("unix:/run/bnserve.sock"), IsOkAndHolds("unix:/run/bnserve.sock"));
}

TEST(GrpcTargetTest, AListBecomesOneMultiAddressTarget) {
  EXPECT_THAT(GrpcTarget("127.0.0.1:50051,127.0.0.1:50052"),
              IsOkAndHolds("ipv4:127.0.0.1:50051,127.0.0.1:50052"));
  EXPECT_THAT(GrpcTarget("10.0.0.1:1, localhost:2 ,10.0.0.3:3"),
              IsOkAndHolds("ipv4:10.0.0.1:1,127.0.0.1:2,10.0.0.3:3"));
  EXPECT_THAT(GrpcTarget("[::1]:50051,[fe80::1]:50052"),
              IsOkAndHolds("ipv6:[::1]:50051,[fe80::1]:50052"));
}

TEST(GrpcTargetTest, ABadListIsInvalidArgumentNamingTheEntry) {
  EXPECT_THAT(GrpcTarget(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GrpcTarget("127.0.0.1:1,,127.0.0.1:2"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty entry")));
  EXPECT_THAT(GrpcTarget("127.0.0.1:1,127.0.0.1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"127.0.0.1\"")));
  EXPECT_THAT(GrpcTarget("127.0.0.1:1,127.0.0.1:70000"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1-65535")));
  EXPECT_THAT(GrpcTarget("a.example:1,b.example:1"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dns:///")));
  EXPECT_THAT(GrpcTarget("127.0.0.1:1,[::1]:2"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mixes IPv4 and IPv6")));
}

}  // namespace
}  // namespace bnserve
