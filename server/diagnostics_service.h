// DiagnosticsService: bnserve.v1.Diagnostics, the measurement aid of the load
// tool (bnctl bench predict). Echo moves a Predict-sized request and response
// through the server without touching any model, so that the difference
// between Predict and Echo at the same payload is the cost of inference.
//
// Stateless; thread-safe. Register it next to the other services:
//   DiagnosticsService diagnostics;
//   builder.RegisterService(&diagnostics);
#ifndef BNSERVE_SERVER_DIAGNOSTICS_SERVICE_H_
#define BNSERVE_SERVER_DIAGNOSTICS_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "bnserve/v1/diagnostics.grpc.pb.h"
#include "server/grpc_authorizer.h"

namespace bnserve {

class DiagnosticsService final : public v1::Diagnostics::CallbackService {
 public:
  // The number of columns of Echo's probabilities (a 10-class model's).
  static constexpr int kEchoClasses = 10;

  // `authorizer` (null: no access control) must outlive the service.
  explicit DiagnosticsService(const GrpcAuthorizer* authorizer = nullptr)
      : authorizer_(authorizer) {}

  // Answers at once (see diagnostics.proto): probabilities [rows, 10] of 0.1,
  // `rows` zero classes. INVALID_ARGUMENT when the inputs' shape is not
  // [rows, features] matching the number of values.
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::PredictRequest* request,
                                 v1::PredictResponse* response) override;

 private:
  const GrpcAuthorizer* const authorizer_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_DIAGNOSTICS_SERVICE_H_
