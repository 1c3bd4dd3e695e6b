// InferenceServiceImpl: the bnserve.v1.InferenceService on the gRPC callback
// API. Predict and Evaluate validate the request, fetch the (cached) network
// from the ModelRegistry and run its const prediction, so they run
// concurrently with each other and with training, and never change a stored
// network (BATCH_STATISTICS uses the request batch's statistics only).
// Predict runs on the gRPC callback thread (a forward pass of at most
// max_batch rows); Evaluate, which may load a whole built-in split, runs on a
// thread of its own and finishes the reactor from there.
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_INFERENCE_SERVICE_H_
#define BNSERVE_SERVER_INFERENCE_SERVICE_H_

#include "bnserve/v1/inference_service.grpc.pb.h"
#include "server/data_resolver.h"
#include "server/model_registry.h"

namespace bnserve {

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  // The pointers must outlive the service. A Predict (or inline Evaluate)
  // with more than `max_batch` rows is ResourceExhausted.
  InferenceServiceImpl(ModelRegistry* registry, DataResolver* data, int max_batch)
      : registry_(registry), data_(data), max_batch_(max_batch) {}

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;

  // The work of each RPC, as plain functions (also used by tests).
  absl::Status DoPredict(const v1::PredictRequest& request, v1::PredictResponse* response);
  absl::Status DoEvaluate(const v1::EvaluateRequest& request, v1::EvaluateResponse* response);

 private:
  // ResourceExhausted for more rows than max_batch_.
  absl::Status CheckRows(int64_t rows) const;

  ModelRegistry* const registry_;
  DataResolver* const data_;
  const int max_batch_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_INFERENCE_SERVICE_H_
