#include "server/diagnostics_service.h"

#include <string>

#include "server/grpc_status_util.h"
#include "server/proto_convert.h"

namespace bnserve {

grpc::ServerUnaryReactor* DiagnosticsService::Echo(grpc::CallbackServerContext* context,
                                                   const v1::PredictRequest* request,
                                                   v1::PredictResponse* response) {
  if (absl::Status allowed = AuthorizeCall(authorizer_, *context, "/bnserve.v1.Diagnostics/Echo");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  // Predict's own shape check (no overflow for any shape, the same message).
  absl::StatusOr<ConstMatrixMapT<float>> inputs = MapTensor(request->inputs());
  if (!inputs.ok()) return FinishUnary(context, inputs.status());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const int rows = static_cast<int>(inputs->rows());
  v1::Tensor* probabilities = response->mutable_probabilities();
  probabilities->add_shape(rows);
  probabilities->add_shape(kEchoClasses);
  probabilities->mutable_values()->Resize(rows * kEchoClasses, 1.0f / kEchoClasses);
  response->mutable_predicted_classes()->Resize(rows, 0);
  response->set_model_name(request->model().name());
  response->set_model_version(0);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace bnserve
