// InferenceServiceImpl: the bnserve.v1.InferenceService on the gRPC callback
// API. Predict and Evaluate validate the request, fetch the (cached) network
// from the ModelCatalog and run its const prediction, so they run
// concurrently with each other and with training, and never change a stored
// network (BATCH_STATISTICS uses the request batch's statistics only).
// Predict is the shared Predictor (server/predictor.h) and runs on the gRPC callback thread (a forward pass of at most
// max_batch rows); Evaluate, which may load a whole built-in split, runs on a
// thread of its own and finishes the reactor from there. At most
// max_concurrent_evaluations Evaluates run at once (more are
// ResourceExhausted), and the destructor waits for the running ones.
// The evaluation itself is core's EvaluateNetwork (core/evaluation.h): in
// INFERENCE mode over slices of evaluation_slice_rows rows, in
// BATCH_STATISTICS mode in one pass; a pass whose estimated buffers exceed
// max_evaluation_bytes is ResourceExhausted.
//
// Inspect (server/inspector.h: per hidden layer histograms of a stored or
// untrained network's outputs) may load a built-in split too: it runs like
// Evaluate, on a thread of its own, and counts against the same
// max_concurrent_evaluations; its forward pass is bounded by
// max_evaluation_bytes, its inline and N(0, 1) rows by max_batch, its answer
// by max_response_bytes.
//
// Every Predict, answered or refused, is recorded in the ServerMetrics
// given (protocol v1_grpc; ServerMetrics::RecordInference), when one is.
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_INFERENCE_SERVICE_H_
#define BNSERVE_SERVER_INFERENCE_SERVICE_H_

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "core/evaluation.h"
#include "server/data_resolver.h"
#include "server/grpc_authorizer.h"
#include "server/inspector.h"
#include "server/model_catalog.h"
#include "server/predictor.h"
#include "server/server_metrics.h"

namespace bnserve {

struct InferenceServiceOptions {
  // A Predict (or inline Evaluate) with more rows is ResourceExhausted.
  int max_batch = 10000;
  // Evaluates running at once; one more is ResourceExhausted.
  int max_concurrent_evaluations = 2;
  // Largest estimated working memory of one Evaluate forward pass, in bytes.
  int64_t max_evaluation_bytes = int64_t{4096} << 20;
  // Largest Predict response (probabilities and classes), in bytes.
  int64_t max_response_bytes = int64_t{64} << 20;
  // Rows per forward pass of an INFERENCE-mode Evaluate.
  int evaluation_slice_rows = kEvaluationSliceRows;
};

class InferenceServiceImpl final : public v1::InferenceService::CallbackService {
 public:
  // The pointers must outlive the service; `metrics` may be null (nothing
  // recorded).
  InferenceServiceImpl(ModelCatalog* catalog, DataResolver* data,
                       const InferenceServiceOptions& options, ServerMetrics* metrics = nullptr,
                       const GrpcAuthorizer* authorizer = nullptr)
      : catalog_(catalog),
        data_(data),
        options_(options),
        predictor_(catalog, PredictorOptions{options.max_batch, options.max_response_bytes,
                                             options.max_evaluation_bytes}),
        inspector_(catalog, data,
                   InspectorOptions{options.max_batch, options.max_evaluation_bytes,
                                    options.max_response_bytes}),
        metrics_(metrics),
        authorizer_(authorizer) {}

  // Waits until every running Evaluate and Inspect thread has finished.
  ~InferenceServiceImpl() override;

  InferenceServiceImpl(const InferenceServiceImpl&) = delete;
  InferenceServiceImpl& operator=(const InferenceServiceImpl&) = delete;

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* Inspect(grpc::CallbackServerContext* context,
                                    const v1::InspectRequest* request,
                                    v1::InspectResponse* response) override;

  // The Predictor behind Predict, shared with the Open Inference Protocol.
  const Predictor* predictor() const { return &predictor_; }

  // The work of each RPC, as plain functions (also used by tests). DoPredict
  // records the request in the metrics.
  absl::Status DoPredict(const v1::PredictRequest& request, v1::PredictResponse* response);
  absl::Status DoEvaluate(const v1::EvaluateRequest& request, v1::EvaluateResponse* response);
  absl::Status DoInspect(const v1::InspectRequest& request, v1::InspectResponse* response);

 private:
  // ResourceExhausted for more rows than max_batch_.
  absl::Status CheckRows(int64_t rows) const;
  // Runs `work` on a thread of its own and finishes the reactor with its
  // status, or finishes at once with ResourceExhausted when
  // max_concurrent_evaluations are running. `work` may only use what lives
  // until Finish (the request, the response) and the service.
  grpc::ServerUnaryReactor* RunOffThread(grpc::CallbackServerContext* context,
                                         std::function<absl::Status()> work);
  // Predict's checks and forward pass, without the response and the metrics.
  absl::StatusOr<Prediction> RunPredict(const v1::PredictRequest& request) const;

  ModelCatalog* const catalog_;
  DataResolver* const data_;
  const InferenceServiceOptions options_;
  const Predictor predictor_;
  Inspector inspector_;
  ServerMetrics* const metrics_;
  const GrpcAuthorizer* const authorizer_;  // null: no access control
  absl::Mutex mu_;
  int running_evaluations_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_INFERENCE_SERVICE_H_
