// OpenInferenceServiceImpl: the Open Inference Protocol's
// inference.GRPCInferenceService on the gRPC callback API, on bnserve's gRPC
// port next to bnserve.v1. A thin layer: each method calls OpenInference
// (server/open_inference.h), which owns the protocol's semantics and runs
// the same Predictor as bnserve.v1 Predict.
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_OPEN_INFERENCE_SERVICE_H_
#define BNSERVE_SERVER_OPEN_INFERENCE_SERVICE_H_

#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/open_inference.h"

namespace bnserve {

class OpenInferenceServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `inference` must outlive the service.
  explicit OpenInferenceServiceImpl(OpenInference* inference) : inference_(inference) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  OpenInference* const inference_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_OPEN_INFERENCE_SERVICE_H_
