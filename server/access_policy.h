// AccessPolicy: who may call what. The one table that maps every gRPC method
// bnserve serves ("/package.Service/Method") to the role it needs, and says
// which calls change state (and so get an audit line). Transport-free (no
// gRPC here): the gRPC glue (GrpcAuthorizer, GrpcAuditInterceptorFactory)
// and the tests read the same table.
//
// Roles are ordered: viewer < trainer < admin; a role may do everything the
// roles below it may.
//   viewer   health, ListModels, GetModel without parameters, Predict,
//            Evaluate, the V2 inference RPCs, Echo (and GET /metrics)
//   trainer  + Train, GetJob, ListJobs, CancelJob, WatchJob
//   admin    + DeleteModelVersion, SetAlias, DeleteAlias, ImportModel,
//            ExportModel, GetModel with include_parameters
// Open to anyone (no token): grpc.health.v1 (probes), the V2 health RPCs
// ServerLive / ServerReady / ModelReady, and server reflection (which shows
// the API's schema only; bnserve's --reflection=false removes it).
// A method that is not in the table needs admin: deny by default.
//
//   ASSIGN_OR_RETURN(std::optional<Role> needed,
//                    AccessPolicy::RequiredRole(method, include_parameters));
//   RETURN_IF_ERROR(AccessPolicy::Check(caller_role, method, include_parameters));
//
// Thread-safety: stateless (a constant table); thread-safe.
#ifndef BNSERVE_SERVER_ACCESS_POLICY_H_
#define BNSERVE_SERVER_ACCESS_POLICY_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace bnserve {

enum class Role { kViewer = 1, kTrainer = 2, kAdmin = 3 };

// "viewer", "trainer", "admin".
const char* RoleName(Role role);

// The role named `name` (as RoleName); InvalidArgument otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// One row of the table.
struct MethodRule {
  // "/package.Service/Method" (gRPC), or "METHOD /pattern" (an HTTP route,
  // as server/v2_rest_routes.cc declares it).
  const char* method;
  // The role the call needs; nullopt: open, no token needed.
  std::optional<Role> role;
  // The role GetModel needs when it asks for the parameters
  // (include_parameters); equal to `role` for every other method.
  std::optional<Role> role_with_parameters;
  // The call changes state (or hands out parameters): one audit line each.
  bool audited;
};

class AccessPolicy {
 public:
  // Every rule, in a fixed order.
  static absl::Span<const MethodRule> Rules();

  // The rule of `method`; nullptr when the table has none.
  static const MethodRule* Find(absl::string_view method);

  // The role `method` needs (nullopt: open). `include_parameters` is
  // GetModelRequest.include_parameters (false for every other method). A
  // method without a rule needs admin.
  static std::optional<Role> RequiredRole(absl::string_view method, bool include_parameters);

  // Whether a caller may make the call: OK when the method is open or the
  // caller's role is at least the one needed; Unauthenticated ("a bearer
  // token is required") when `caller` is nullopt (no valid token) and the
  // method is not open; PermissionDenied naming the role needed and the
  // caller's otherwise.
  static absl::Status Check(std::optional<Role> caller, absl::string_view method,
                            bool include_parameters);

  // Whether `method` gets an audit line (false for a method without a rule).
  static bool Audited(absl::string_view method);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_ACCESS_POLICY_H_
