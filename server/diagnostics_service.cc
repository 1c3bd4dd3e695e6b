#include "server/diagnostics_service.h"

#include <string>

namespace bnserve {

grpc::ServerUnaryReactor* DiagnosticsService::Echo(grpc::CallbackServerContext* context,
                                                   const v1::PredictRequest* request,
                                                   v1::PredictResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const v1::Tensor& inputs = request->inputs();
  if (inputs.shape_size() != 2 || inputs.shape(0) <= 0 || inputs.shape(1) <= 0 ||
      inputs.shape(0) * inputs.shape(1) != inputs.values_size()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "inputs must have shape [rows, features] matching its "
                                 "number of values"));
    return reactor;
  }
  const int rows = static_cast<int>(inputs.shape(0));
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
