#include "server/grpc_authorizer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "server/access_policy.h"

namespace bnserve {

std::optional<absl::string_view> GrpcAuthorizer::BearerToken(absl::string_view authorization) {
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  absl::string_view token = absl::StripAsciiWhitespace(authorization.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

std::optional<TokenIdentity> GrpcAuthorizer::Identify(
    const grpc::ServerContextBase& context) const {
  if (tokens_ == nullptr) return std::nullopt;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return std::nullopt;
  std::optional<absl::string_view> token =
      BearerToken(absl::string_view(it->second.data(), it->second.size()));
  if (!token.has_value()) return std::nullopt;
  return tokens_->Authenticate(*token);
}

absl::Status GrpcAuthorizer::Authorize(const grpc::ServerContextBase& context,
                                       absl::string_view method, bool include_parameters) const {
  if (tokens_ == nullptr) return absl::OkStatus();
  std::optional<TokenIdentity> identity = Identify(context);
  std::optional<Role> role;
  if (identity.has_value()) role = identity->role;
  return AccessPolicy::Check(role, method, include_parameters);
}

std::string GrpcAuthorizer::CallerName(const grpc::ServerContextBase& context) const {
  if (tokens_ == nullptr) return "anonymous";
  std::optional<TokenIdentity> identity = Identify(context);
  return identity.has_value() ? identity->name : "unauthenticated";
}

std::string CallerNameOf(const GrpcAuthorizer* authorizer,
                         const grpc::ServerContextBase& context) {
  return authorizer == nullptr ? "anonymous" : authorizer->CallerName(context);
}

absl::Status AuthorizeCall(const GrpcAuthorizer* authorizer, const grpc::ServerContextBase& context,
                           absl::string_view method, bool include_parameters) {
  if (authorizer == nullptr) return absl::OkStatus();
  return authorizer->Authorize(context, method, include_parameters);
}

}  // namespace bnserve
