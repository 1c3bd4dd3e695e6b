// GrpcAuditInterceptorFactory: a server interceptor that writes one audit
// line for every call AccessPolicy marks audited (Train, CancelJob,
// DeleteModelVersion, SetAlias, DeleteAlias, ImportModel, ExportModel),
// refused calls included, through BNSERVE_LOG(INFO) with the fixed prefix
// "audit:":
//
//   audit: caller=ci-bot peer=ipv4:10.0.0.7:51234
//          method=/bnserve.v1.ModelRegistry/SetAlias model="digits" alias="production"
//          version=3 result=OK
//
// (one line). caller is the bearer token's name (GrpcAuthorizer::CallerName:
// "anonymous" with access control off, "unauthenticated" without a valid
// token); the subject (model, version, alias, job) comes from the
// deserialized request (POST_RECV_MESSAGE), Train's new job id from its
// response, and result is the status code sent (PRE_SEND_STATUS). Names the
// client chose are cut to 128 bytes and C-escaped, so no client can forge or
// break lines. ImportModel's request is raw bytes: its line names the
// version it stored, from its response, on success only.
//
// Installed after ParseFailureInterceptorFactory (so it logs the status
// that interceptor sends) and before GrpcMetricsInterceptorFactory.
//
// Thread-safety: the factory is thread-safe (the authorizer is); each
// interceptor serves one call, whose hooks gRPC runs one at a time.
#ifndef BNSERVE_SERVER_GRPC_AUDIT_INTERCEPTOR_H_
#define BNSERVE_SERVER_GRPC_AUDIT_INTERCEPTOR_H_

#include "grpcpp/support/server_interceptor.h"
#include "server/grpc_authorizer.h"

namespace bnserve {

class GrpcAuditInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `authorizer` must outlive every call of the server.
  explicit GrpcAuditInterceptorFactory(const GrpcAuthorizer* authorizer)
      : authorizer_(authorizer) {}

  // An interceptor for an audited method; nullptr for every other call.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const GrpcAuthorizer* const authorizer_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_GRPC_AUDIT_INTERCEPTOR_H_
