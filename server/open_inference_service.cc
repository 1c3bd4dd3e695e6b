#include "server/open_inference_service.h"

#include "server/grpc_status_util.h"

namespace bnserve {

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest* /*request*/,
    inference::ServerLiveResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ServerLive");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  response->set_live(inference_->ServerLive());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest* /*request*/,
    inference::ServerReadyResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ServerReady");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  response->set_ready(inference_->ServerReady());
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ModelReady");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  absl::StatusOr<bool> ready = inference_->ModelReady(request->name(), request->version());
  if (ready.ok()) response->set_ready(*ready);
  return FinishUnary(context, ready.status());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest* /*request*/,
    inference::ServerMetadataResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ServerMetadata");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  inference_->ServerMetadata(response);
  return FinishUnary(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ModelMetadata");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  return FinishUnary(context, inference_->ModelMetadata(*request, response));
}

grpc::ServerUnaryReactor* OpenInferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  if (absl::Status allowed =
          AuthorizeCall(authorizer_, *context, "/inference.GRPCInferenceService/ModelInfer");
      !allowed.ok()) {
    return FinishUnary(context, allowed);
  }
  const absl::Time received = absl::Now();
  return FinishUnary(context, inference_->ModelInfer(*request, response,
                                                     InferenceProtocol::kV2Grpc, received));
}

}  // namespace bnserve
