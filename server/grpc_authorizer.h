// GrpcAuthorizer: the gRPC side of access control. It reads the call's
// "authorization: Bearer <token>" metadata, finds the token's identity in a
// TokenStore and asks AccessPolicy whether that identity's role may make
// the call. Every bnserve service handler calls Authorize first, before it
// acts (gRPC 1.51's server interceptors cannot stop a handler from running,
// so the check is the handler's first statement; the table stays
// AccessPolicy's alone):
//
//   grpc::ServerUnaryReactor* Service::DeleteAlias(context, request, response) {
//     if (absl::Status s = authorizer_->Authorize(*context, kDeleteAliasMethod); !s.ok())
//       return FinishUnary(context, s);
//     ...
//
// With no TokenStore (no --auth_tokens) every call is allowed and callers are
// "anonymous". A null GrpcAuthorizer* given to a service means the same.
//
// Thread-safety: thread-safe (TokenStore is); the store must outlive it.
#ifndef BNSERVE_SERVER_GRPC_AUTHORIZER_H_
#define BNSERVE_SERVER_GRPC_AUTHORIZER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "server/token_store.h"

namespace bnserve {

class GrpcAuthorizer {
 public:
  // `tokens` null: access control off.
  explicit GrpcAuthorizer(const TokenStore* tokens) : tokens_(tokens) {}

  bool enabled() const { return tokens_ != nullptr; }

  // OK when the call's caller may call `method` ("/package.Service/Method";
  // `include_parameters` as GetModelRequest's), else AccessPolicy::Check's
  // Unauthenticated (no or an unknown token, or not "Bearer ...") or
  // PermissionDenied (the role is too low).
  absl::Status Authorize(const grpc::ServerContextBase& context, absl::string_view method,
                         bool include_parameters = false) const;

  // The identity of the call's bearer token; nullopt without a valid one.
  std::optional<TokenIdentity> Identify(const grpc::ServerContextBase& context) const;

  // Who is calling, for the audit log: the token's name, "anonymous" when
  // access control is off, "unauthenticated" without a valid token.
  std::string CallerName(const grpc::ServerContextBase& context) const;

  // The token of an "authorization" metadata value "Bearer <token>" (the
  // scheme's case ignored); nullopt for anything else.
  static std::optional<absl::string_view> BearerToken(absl::string_view authorization);

 private:
  const TokenStore* const tokens_;
};

// `authorizer->CallerName(context)`, or "anonymous" when `authorizer` is null.
std::string CallerNameOf(const GrpcAuthorizer* authorizer, const grpc::ServerContextBase& context);

// `authorizer->Authorize(...)`, or OK when `authorizer` is null.
absl::Status AuthorizeCall(const GrpcAuthorizer* authorizer,
                           const grpc::ServerContextBase& context, absl::string_view method,
                           bool include_parameters = false);

}  // namespace bnserve

#endif  // BNSERVE_SERVER_GRPC_AUTHORIZER_H_
