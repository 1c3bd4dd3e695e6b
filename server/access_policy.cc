#include "server/access_policy.h"

#include <iterator>

#include "absl/strings/str_cat.h"

namespace bnserve {
namespace {

constexpr std::optional<Role> kOpen = std::nullopt;
constexpr std::optional<Role> kViewer = Role::kViewer;
constexpr std::optional<Role> kTrainer = Role::kTrainer;
constexpr std::optional<Role> kAdmin = Role::kAdmin;

// The table. A new RPC needs a row here (tests/server/access_policy_test.cc
// fails for a method of a bnserve service without one).
constexpr MethodRule kRules[] = {
    // Probes and tooling.
    {"/grpc.health.v1.Health/Check", kOpen, kOpen, false},
    {"/grpc.health.v1.Health/Watch", kOpen, kOpen, false},
    {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", kOpen, kOpen, false},
    {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", kOpen, kOpen, false},
    {"/inference.GRPCInferenceService/ServerLive", kOpen, kOpen, false},
    {"/inference.GRPCInferenceService/ServerReady", kOpen, kOpen, false},
    {"/inference.GRPCInferenceService/ModelReady", kOpen, kOpen, false},
    // Reading models and inference.
    {"/inference.GRPCInferenceService/ServerMetadata", kViewer, kViewer, false},
    {"/inference.GRPCInferenceService/ModelMetadata", kViewer, kViewer, false},
    {"/inference.GRPCInferenceService/ModelInfer", kViewer, kViewer, false},
    {"/bnserve.v1.InferenceService/Predict", kViewer, kViewer, false},
    {"/bnserve.v1.InferenceService/Evaluate", kViewer, kViewer, false},
    {"/bnserve.v1.InferenceService/Inspect", kViewer, kViewer, false},
    {"/bnserve.v1.Diagnostics/Echo", kViewer, kViewer, false},
    {"/bnserve.v1.ModelRegistry/ListModels", kViewer, kViewer, false},
    {"/bnserve.v1.ModelRegistry/GetModel", kViewer, kAdmin, false},
    // Training.
    {"/bnserve.v1.TrainingService/Train", kTrainer, kTrainer, true},
    {"/bnserve.v1.TrainingService/GetJob", kTrainer, kTrainer, false},
    {"/bnserve.v1.TrainingService/ListJobs", kTrainer, kTrainer, false},
    {"/bnserve.v1.TrainingService/CancelJob", kTrainer, kTrainer, true},
    {"/bnserve.v1.TrainingService/WatchJob", kTrainer, kTrainer, false},
    {"/bnserve.v1.TrainingService/StartSweep", kTrainer, kTrainer, true},
    {"/bnserve.v1.TrainingService/GetSweep", kTrainer, kTrainer, false},
    {"/bnserve.v1.TrainingService/ListSweeps", kTrainer, kTrainer, false},
    {"/bnserve.v1.TrainingService/CancelSweep", kTrainer, kTrainer, true},
    {"/bnserve.v1.TrainingService/WatchSweep", kTrainer, kTrainer, false},
    // Changing the registry, and its parameters leaving the server.
    {"/bnserve.v1.ModelRegistry/DeleteModelVersion", kAdmin, kAdmin, true},
    {"/bnserve.v1.ModelRegistry/SetAlias", kAdmin, kAdmin, true},
    {"/bnserve.v1.ModelRegistry/DeleteAlias", kAdmin, kAdmin, true},
    {"/bnserve.v1.ModelRegistry/ImportModel", kAdmin, kAdmin, true},
    {"/bnserve.v1.ModelRegistry/ExportModel", kAdmin, kAdmin, true},
    // The HTTP port's routes, as "METHOD pattern" (server/v2_rest_routes.cc):
    // health open, the rest as their gRPC twins; GET /metrics is a viewer's.
    {"GET /v2/health/live", kOpen, kOpen, false},
    {"GET /v2/health/ready", kOpen, kOpen, false},
    {"GET /v2/models/{model}/ready", kOpen, kOpen, false},
    {"GET /v2/models/{model}/versions/{version}/ready", kOpen, kOpen, false},
    {"GET /v2", kViewer, kViewer, false},
    {"GET /v2/models/{model}", kViewer, kViewer, false},
    {"GET /v2/models/{model}/versions/{version}", kViewer, kViewer, false},
    {"POST /v2/models/{model}/infer", kViewer, kViewer, false},
    {"POST /v2/models/{model}/versions/{version}/infer", kViewer, kViewer, false},
    {"GET /metrics", kViewer, kViewer, false},
};

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kTrainer:
      return "trainer";
    case Role::kAdmin:
      return "admin";
  }
  return "admin";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kViewer, Role::kTrainer, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role \"", name.substr(0, 32), "\" (viewer, trainer or admin)"));
}

absl::Span<const MethodRule> AccessPolicy::Rules() { return absl::MakeConstSpan(kRules); }

const MethodRule* AccessPolicy::Find(absl::string_view method) {
  for (const MethodRule& rule : kRules) {
    if (method == rule.method) return &rule;
  }
  return nullptr;
}

std::optional<Role> AccessPolicy::RequiredRole(absl::string_view method, bool include_parameters) {
  const MethodRule* rule = Find(method);
  if (rule == nullptr) return Role::kAdmin;
  return include_parameters ? rule->role_with_parameters : rule->role;
}

absl::Status AccessPolicy::Check(std::optional<Role> caller, absl::string_view method,
                                 bool include_parameters) {
  const std::optional<Role> needed = RequiredRole(method, include_parameters);
  if (!needed.has_value()) return absl::OkStatus();
  if (!caller.has_value()) {
    return absl::UnauthenticatedError(
        "a bearer token is required (metadata \"authorization: Bearer <token>\")");
  }
  if (static_cast<int>(*caller) >= static_cast<int>(*needed)) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(method.substr(0, 128), include_parameters ? " with include_parameters" : "",
                   " needs role ", RoleName(*needed), "; the token's role is ", RoleName(*caller)));
}

bool AccessPolicy::Audited(absl::string_view method) {
  const MethodRule* rule = Find(method);
  return rule != nullptr && rule->audited;
}

}  // namespace bnserve
