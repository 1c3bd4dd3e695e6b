#include "server/grpc_metrics_interceptor.h"

#include "absl/status/status.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/support/interceptor.h"
#include "grpcpp/support/status.h"

namespace bnserve {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// The method label of every call to a method the server does not have.
constexpr char kUnknownMethod[] = "/unknown/unknown";

// go-grpc-prometheus's grpc_type of a method kind.
const char* GrpcType(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unary";
}

class GrpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  GrpcMetricsInterceptor(ServerMetrics* metrics, const char* method, const char* type)
      : metrics_(metrics), method_(method), type_(type) {
    metrics_->RecordGrpcStarted(method_, type_);
  }

  ~GrpcMetricsInterceptor() override {
    if (!handled_) metrics_->RecordGrpcHandled(method_, type_, absl::StatusCode::kCancelled);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!handled_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      handled_ = true;
      // gRPC's codes are absl's, number for number.
      metrics_->RecordGrpcHandled(
          method_, type_, static_cast<absl::StatusCode>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const char* const method_;  // the registered method's name: lives with the server
  const char* const type_;
  bool handled_ = false;  // the call's status has been counted
};

}  // namespace

grpc::experimental::Interceptor* GrpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  // bnserve registers no generic service: a call served by a generic context
  // is gRPC's own answer to a method the server does not have, whose name
  // the client chose. One series for all of them, not one per name.
  grpc::ServerContextBase* context = info->server_context();
  if (info->method() == nullptr ||
      dynamic_cast<grpc::GenericCallbackServerContext*>(context) != nullptr ||
      dynamic_cast<grpc::GenericServerContext*>(context) != nullptr) {
    return new GrpcMetricsInterceptor(metrics_, kUnknownMethod, GrpcType(info->type()));
  }
  return new GrpcMetricsInterceptor(metrics_, info->method(), GrpcType(info->type()));
}

}  // namespace bnserve
