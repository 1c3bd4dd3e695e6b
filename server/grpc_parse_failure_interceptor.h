// ParseFailureInterceptorFactory: a server interceptor that answers a request
// gRPC could not parse with INTERNAL "cannot parse the request of
// /package.Service/Method" (gRPC's status-code table: a request that fails
// to parse is INTERNAL), instead of gRPC 1.51's UNIMPLEMENTED with an empty
// message, which tells a client that the method does not exist.
//
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(std::make_unique<ParseFailureInterceptorFactory>());
//   builder.experimental().SetInterceptorCreators(std::move(f));
//
// How: a callback method's request is parsed before its handler runs; when
// that fails the handler never runs and gRPC finishes the call with
// UNIMPLEMENTED "". Interceptors see the failure (the POST_RECV_MESSAGE hook
// of the call's one request carries no message) and may change the status
// sent (PRE_SEND_STATUS). Only unary and server-streaming methods are
// intercepted: those whose one request gRPC parses up front. A method
// registered raw (ImportModel) parses its own request and answers for it
// itself. An UNIMPLEMENTED with a message, from a handler, passes unchanged.
//
// The same answer, UNIMPLEMENTED "", is what gRPC 1.51 gives when a
// callback handler throws (an allocation failure): it catches the exception
// and finishes the call as if the method did not exist. For a method the
// server implements (`implemented`: by default, one with a row in
// AccessPolicy's table) whose request did parse, the interceptor answers
// INTERNAL HandlerExceptionMessage(method) instead; the server goes on
// serving. Methods without a row (the Open Inference methods bnserve does not
// implement) keep UNIMPLEMENTED.
//
// Thread-safety: the factory is thread-safe (stateless); each interceptor
// serves one call, whose hooks gRPC runs one at a time.
#ifndef BNSERVE_SERVER_PARSE_FAILURE_INTERCEPTOR_H_
#define BNSERVE_SERVER_PARSE_FAILURE_INTERCEPTOR_H_

#include <functional>
#include <string>

#include "grpcpp/support/server_interceptor.h"

namespace bnserve {

// The message of the INTERNAL status for `method` ("/package.Service/Method").
std::string ParseFailureMessage(const std::string& method);

// The message of the INTERNAL status for a handler of `method` that threw.
std::string HandlerExceptionMessage(const std::string& method);

class ParseFailureInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // Whether the server implements a method ("/package.Service/Method").
  using ImplementedPredicate = std::function<bool(const std::string& method)>;

  // `implemented` null: AccessPolicy::Find(method) != nullptr.
  explicit ParseFailureInterceptorFactory(ImplementedPredicate implemented = nullptr);

  // An interceptor for a unary or server-streaming call; nullptr (no
  // interception) for the streaming kinds that read requests later.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  const ImplementedPredicate implemented_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_PARSE_FAILURE_INTERCEPTOR_H_
