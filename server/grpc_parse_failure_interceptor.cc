#include "server/grpc_parse_failure_interceptor.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/access_policy.h"
#include "grpcpp/support/interceptor.h"
#include "grpcpp/support/status.h"

namespace bnserve {
namespace {

using grpc::experimental::InterceptionHookPoints;

class ParseFailureInterceptor final : public grpc::experimental::Interceptor {
 public:
  ParseFailureInterceptor(const char* method, bool implemented)
      : method_(method), implemented_(implemented) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        !received_) {
      received_ = true;
      unparsed_ = methods->GetRecvMessage() == nullptr;
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        if (unparsed_) {
          methods->ModifySendStatus(
              grpc::Status(grpc::StatusCode::INTERNAL, ParseFailureMessage(method_)));
        } else if (received_ && implemented_) {
          // Parsed, implemented, and yet "no such method": its handler threw.
          methods->ModifySendStatus(
              grpc::Status(grpc::StatusCode::INTERNAL, HandlerExceptionMessage(method_)));
        }
      }
    }
    methods->Proceed();
  }

 private:
  const char* const method_;  // the registered method's name: lives with the server
  const bool implemented_;
  bool received_ = false;  // the call's request has been through POST_RECV_MESSAGE
  bool unparsed_ = false;  // ... and gRPC could not parse it
};

}  // namespace

std::string ParseFailureMessage(const std::string& method) {
  return absl::StrCat("cannot parse the request of ", method);
}

std::string HandlerExceptionMessage(const std::string& method) {
  return absl::StrCat("the server failed while handling ", method,
                      " (an exception, such as running out of memory, ended its handler); "
                      "it keeps serving other requests");
}

ParseFailureInterceptorFactory::ParseFailureInterceptorFactory(ImplementedPredicate implemented)
    : implemented_(implemented != nullptr ? std::move(implemented)
                                          : [](const std::string& method) {
                                              return AccessPolicy::Find(method) != nullptr;
                                            }) {}

grpc::experimental::Interceptor* ParseFailureInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) return nullptr;
  return new ParseFailureInterceptor(info->method(), implemented_(info->method()));
}

}  // namespace bnserve
