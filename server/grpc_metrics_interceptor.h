// GrpcMetricsInterceptorFactory: a server interceptor that counts every gRPC
// call by method, and by method and final status code, into ServerMetrics
// (bnserve_grpc_server_started_total and bnserve_grpc_server_handled_total,
// go-grpc-prometheus's names with bnserve's prefix and its labels
// grpc_type, grpc_service, grpc_method, grpc_code).
//
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(std::make_unique<ParseFailureInterceptorFactory>());
//   f.push_back(std::make_unique<GrpcMetricsInterceptorFactory>(&metrics));  // last
//   builder.experimental().SetInterceptorCreators(std::move(f));
//
// A call is counted as started when gRPC creates its interceptors, and as
// handled with the status the server sends (the PRE_SEND_STATUS hook), for
// every kind of method: unary, server streaming (WatchJob: its OK, or the
// CANCELLED it finishes with when the client goes away), and raw methods
// (ImportModel). Interceptors see the status in the order they are
// installed, so this one goes last, after any that rewrite the status (the
// ParseFailureInterceptorFactory's INTERNAL). A call whose interceptor is
// destroyed without a status having been sent counts as Canceled. Calls of
// methods the server does not have (gRPC answers them UNIMPLEMENTED through
// a generic handler) are counted under grpc_service "unknown", grpc_method
// "unknown": a client cannot make a series per made-up name.
// REQUIRES: the server registers no generic service (it would count as
// unknown too).
//
// Thread-safety: the factory is thread-safe (ServerMetrics is); each
// interceptor serves one call, whose hooks gRPC runs one at a time.
#ifndef BNSERVE_SERVER_GRPC_METRICS_INTERCEPTOR_H_
#define BNSERVE_SERVER_GRPC_METRICS_INTERCEPTOR_H_

#include "grpcpp/support/server_interceptor.h"
#include "server/server_metrics.h"

namespace bnserve {

class GrpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `metrics` must outlive every call of the server.
  explicit GrpcMetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}

  // An interceptor for any call; it counts the call as started.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* const metrics_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_GRPC_METRICS_INTERCEPTOR_H_
