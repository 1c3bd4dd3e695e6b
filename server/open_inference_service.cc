#include "server/open_inference_service.h"

#include "server/grpc_status_util.h"

namespace bnserve {

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  response->set_live(inference_->ServerLive());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  response->set_ready(inference_->ServerReady());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  absl::StatusOr<bool> ready = inference_->ModelReady(request->name(), request->version());
  if (ready.ok()) response->set_ready(*ready);
  return FinishUnary(context, ready.status());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  inference_->ServerMetadata(response);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  return FinishUnary(context, inference_->ModelMetadata(*request, response));
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  const absl::Time received = absl::Now();
  return FinishUnary(context, inference_->ModelInfer(*request, response,
                                                     InferenceProtocol::kV2Grpc, received));
}

}  // namespace bnserve
