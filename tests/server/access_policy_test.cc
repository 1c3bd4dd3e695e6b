#include "server/access_policy.h"

#include "gtest/gtest.h"

namespace bnserve {
namespace {

constexpr const char* kPredict = "/bnserve.v1.InferenceService/Predict";
constexpr const char* kTrain = "/bnserve.v1.TrainingService/Train";
constexpr const char* kSetAlias = "/bnserve.v1.ModelRegistry/SetAlias";
constexpr const char* kGetModel = "/bnserve.v1.ModelRegistry/GetModel";

TEST(AccessPolicyTest, RolesAreOrderedViewerTrainerAdmin) {
  EXPECT_TRUE(AccessPolicy::Check(Role::kViewer, kPredict, false).ok());
  EXPECT_TRUE(AccessPolicy::Check(Role::kTrainer, kPredict, false).ok());
  EXPECT_TRUE(AccessPolicy::Check(Role::kAdmin, kPredict, false).ok());
  EXPECT_EQ(AccessPolicy::Check(Role::kViewer, kTrain, false).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(AccessPolicy::Check(Role::kTrainer, kTrain, false).ok());
  EXPECT_EQ(AccessPolicy::Check(Role::kTrainer, kSetAlias, false).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(AccessPolicy::Check(Role::kAdmin, kSetAlias, false).ok());
}

TEST(AccessPolicyTest, DenialNamesTheRoleNeededAndTheCallers) {
  absl::Status denied = AccessPolicy::Check(Role::kViewer, kSetAlias, false);
  EXPECT_EQ(denied.message(),
            "/bnserve.v1.ModelRegistry/SetAlias needs role admin; the token's role is viewer");
  absl::Status anonymous = AccessPolicy::Check(std::nullopt, kPredict, false);
  EXPECT_EQ(anonymous.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(anonymous.message().find("Bearer"), absl::string_view::npos);
}

TEST(AccessPolicyTest, GetModelWithParametersNeedsAdmin) {
  EXPECT_EQ(AccessPolicy::RequiredRole(kGetModel, false), Role::kViewer);
  EXPECT_EQ(AccessPolicy::RequiredRole(kGetModel, true), Role::kAdmin);
  absl::Status denied = AccessPolicy::Check(Role::kTrainer, kGetModel, true);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.message().find("with include_parameters needs role admin"),
            absl::string_view::npos)
      << denied;
  // The flag changes nothing for the other methods.
  EXPECT_EQ(AccessPolicy::RequiredRole(kPredict, true), Role::kViewer);
}

TEST(AccessPolicyTest, HealthIsOpenAndUnknownMethodsNeedAdmin) {
  EXPECT_TRUE(AccessPolicy::Check(std::nullopt, "/grpc.health.v1.Health/Check", false).ok());
  EXPECT_TRUE(AccessPolicy::Check(std::nullopt, "/grpc.health.v1.Health/Watch", false).ok());
  EXPECT_TRUE(
      AccessPolicy::Check(std::nullopt, "/inference.GRPCInferenceService/ServerReady", false)
          .ok());
  EXPECT_EQ(AccessPolicy::Find("/bnserve.v1.Nope/Nope"), nullptr);
  EXPECT_EQ(AccessPolicy::RequiredRole("/bnserve.v1.Nope/Nope", false), Role::kAdmin);
  EXPECT_EQ(AccessPolicy::Check(Role::kTrainer, "/bnserve.v1.Nope/Nope", false).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AccessPolicyTest, EveryStateChangingCallIsAudited) {
  for (const char* method :
       {kTrain, "/bnserve.v1.TrainingService/CancelJob", "/bnserve.v1.ModelRegistry/DeleteModelVersion",
        kSetAlias, "/bnserve.v1.ModelRegistry/DeleteAlias", "/bnserve.v1.ModelRegistry/ImportModel",
        "/bnserve.v1.ModelRegistry/ExportModel"}) {
    EXPECT_TRUE(AccessPolicy::Audited(method)) << method;
  }
  EXPECT_FALSE(AccessPolicy::Audited(kPredict));
  EXPECT_FALSE(AccessPolicy::Audited(kGetModel));
}

TEST(AccessPolicyTest, ParsesRoleNames) {
  for (Role role : {Role::kViewer, Role::kTrainer, Role::kAdmin}) {
    absl::StatusOr<Role> parsed = ParseRole(RoleName(role));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(ParseRole("root").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseRole("Admin").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bnserve
