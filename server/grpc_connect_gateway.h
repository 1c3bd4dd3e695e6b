// ConnectGateway: the bnserve.v1 services on the HTTP port, in the Connect
// protocol (https://connectrpc.com/docs/protocol), so that a browser (the
// dashboard, with @connectrpc/connect-web) or curl can call every method with
// JSON. Each call is made through the server's own in-process gRPC channel,
// so it passes the same interceptors as a gRPC client's: the bearer token in
// the HTTP `Authorization` header is checked by the same authorizer, and the
// call is audited and counted in the metrics like any other.
//
//   POST /bnserve.v1.TrainingService/ListJobs          unary
//   Content-Type: application/json                     (or application/proto)
//   {"pageSize": 10}
//   -> 200 application/json {"jobs": [...]}, or the Connect error
//      {"code": "not_found", "message": "..."} with the HTTP status of the
//      code (HttpStatusFromCode: not_found 404, unauthenticated 401, ...)
//
//   POST /bnserve.v1.TrainingService/WatchJob          server streaming
//   Content-Type: application/connect+json             (or +proto)
//   body: one enveloped message (1 flag byte, 4-byte big-endian length)
//   -> 200 application/connect+json, chunked: one envelope per message as
//      the job produces it, then the end-of-stream envelope (flag 0x02)
//      {} or {"error": {"code": ..., "message": ...}}
//
// JSON is proto3's canonical mapping (lowerCamelCase names, int64 as
// strings, Timestamps as RFC 3339); unknown request fields are ignored, as
// Connect's own servers do. A `Connect-Timeout-Ms` header becomes the call's
// deadline. Compressed messages are refused (unimplemented), a content type
// other than the above is 415, `Connect-Protocol-Version` other than 1 is
// 400. Client-streaming and bidirectional methods (bnserve has none) and
// Connect's GET form of unary calls are not served.
//
// Shutdown cancels the streams in progress (each ends with "unavailable")
// and refuses new calls, so that the HTTP port's shutdown need not wait for
// a job that runs for minutes.
//
// Thread-safety: thread-safe; the routes' handlers run concurrently.
#ifndef BNSERVE_SERVER_GRPC_CONNECT_GATEWAY_H_
#define BNSERVE_SERVER_GRPC_CONNECT_GATEWAY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/http_server.h"

namespace google::protobuf {
class MethodDescriptor;
}

namespace bnserve {

class ConnectGateway {
 public:
  // `channel` reaches the services (the server's in-process channel);
  // `service_names` are full names of services in the generated descriptor
  // pool ("bnserve.v1.TrainingService"); a message larger than
  // `max_message_bytes` is refused.
  ConnectGateway(std::shared_ptr<grpc::Channel> channel, std::vector<std::string> service_names,
                 int64_t max_message_bytes);

  ConnectGateway(const ConnectGateway&) = delete;
  ConnectGateway& operator=(const ConnectGateway&) = delete;

  // One POST route per unary or server-streaming method of the services.
  // The gateway must outlive them. Unknown service names are skipped.
  std::vector<HttpRoute> Routes();

  // Cancels every call in progress and refuses new ones. Idempotent.
  void Shutdown();

 private:
  enum class Codec { kJson, kProto };

  HttpResponse Unary(const google::protobuf::MethodDescriptor* method,
                     const HttpRequest& request);
  HttpResponse ServerStreaming(const google::protobuf::MethodDescriptor* method,
                               const HttpRequest& request);

  // Makes the call `method` with `request` (serialized), calling
  // `on_message` with each response message (serialized) until it returns
  // false, which cancels the call. The call's status.
  grpc::Status Call(const google::protobuf::MethodDescriptor* method,
                    const HttpRequest& http_request, const std::string& request,
                    const std::function<bool(const std::string&)>& on_message);

  bool ShutDown();
  // Registers `context` for Shutdown; false once shut down.
  bool Track(grpc::ClientContext* context);
  void Untrack(grpc::ClientContext* context);

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  const std::vector<std::string> service_names_;
  const int64_t max_message_bytes_;

  absl::Mutex mu_;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_GRPC_CONNECT_GATEWAY_H_
