// The one place where an absl::Status becomes a grpc::Status, and the helpers
// that finish a unary callback RPC with one. Only the gRPC services include
// this: everything below them speaks absl::Status (Abseil's and gRPC's codes
// are equal number for number, so nothing is lost in the conversion).
//
//   grpc::ServerUnaryReactor* Service::GetJob(grpc::CallbackServerContext* context,
//                                             const v1::GetJobRequest* request,
//                                             v1::Job* response) {
//     return FinishUnary(context, jobs_->Get(request->job_id()), response);
//   }
//
// Stateless functions: thread-safe.
#ifndef BNSERVE_SERVER_GRPC_STATUS_UTIL_H_
#define BNSERVE_SERVER_GRPC_STATUS_UTIL_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace bnserve {

// Longest error message sent to a client, in bytes.
inline constexpr size_t kMaxErrorMessageBytes = 1024;

// The gRPC status with the same code and message; a message longer than
// kMaxErrorMessageBytes is cut (at a UTF-8 character boundary) and marked
// "... (truncated)".
grpc::Status ToGrpcStatus(const absl::Status& status);

// Finishes a unary callback RPC with `status` (converted by ToGrpcStatus) on
// the context's default reactor, and returns that reactor.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      const absl::Status& status);

// Moves the value of an OK `result` into *response, then finishes the RPC
// with result's status as above.
template <typename Response>
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* context,
                                      absl::StatusOr<Response> result, Response* response) {
  if (result.ok()) *response = *std::move(result);
  return FinishUnary(context, result.status());
}

}  // namespace bnserve

#endif  // BNSERVE_SERVER_GRPC_STATUS_UTIL_H_
