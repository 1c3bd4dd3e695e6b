#include "server/grpc_parse_failure_interceptor.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/interceptor.h"
#include "grpcpp/support/status.h"

namespace bnserve {
namespace {

using grpc::experimental::InterceptionHookPoints;

class ParseFailureInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ParseFailureInterceptor(const char* method) : method_(method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        !received_) {
      received_ = true;
      unparsed_ = methods->GetRecvMessage() == nullptr;
    }
    if (unparsed_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        methods->ModifySendStatus(
            grpc::Status(grpc::StatusCode::INTERNAL, ParseFailureMessage(method_)));
      }
    }
    methods->Proceed();
  }

 private:
  const char* const method_;  // the registered method's name: lives with the server
  bool received_ = false;  // the call's request has been through POST_RECV_MESSAGE
  bool unparsed_ = false;  // ... and gRPC could not parse it
};

}  // namespace

std::string ParseFailureMessage(const std::string& method) {
  return absl::StrCat("cannot parse the request of ", method);
}

grpc::experimental::Interceptor* ParseFailureInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) return nullptr;
  return new ParseFailureInterceptor(info->method());
}

}  // namespace bnserve
