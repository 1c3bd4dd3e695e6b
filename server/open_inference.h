// OpenInference: the KServe Open Inference Protocol ("V2") on bnserve's
// models, independent of the transport. The gRPC service
// (open_inference_service.h) and the HTTP/REST routes (http_server.h) both
// parse their request into the protocol's messages (proto/inference/
// open_inference_grpc.proto) and call these methods, which run the shared
// Predictor: a ModelInfer answers with exactly the numbers of a bnserve.v1
// Predict of the same rows.
//
// The mapping (also in the README, "Open Inference Protocol"):
//   model name       the bnserve model
//   model version    a version number, an alias, or empty for the latest
//   input "input"    FP32 (or FP64, converted) [N, input_size], in
//                    fp32_contents / fp64_contents or raw_input_contents
//                    (little-endian, row-major)
//   output           "probabilities" FP32 [N, classes] and
//                    "predicted_class" INT32 [N]; the request's `outputs`
//                    list selects them (empty: both); raw contents when the
//                    request used raw contents
//   parameter        "bn_mode": "inference" (default) or "batch_statistics"
//   platform         "bnserve_mlp"
// Errors carry the status codes of Predict (InvalidArgument, NotFound,
// ResourceExhausted).
//
// Readiness: a version is ready once the catalog has loaded it and it has
// answered its warm-up inference (ModelCatalog::IsReady). Asking about a
// version that is not loaded starts loading it in the background and
// answers "not ready"; the server is ready once the default model (if any)
// is ready.
//
// Metrics: every ModelInfer, answered or refused, is recorded once in the
// ServerMetrics given (RecordInference), under the protocol its front end
// passes (v2_grpc, v2_http), a failure under the version the request names.
// A front end that refuses a request before it becomes a ModelInferRequest
// (an HTTP body that does not parse) records it with RecordRefused.
//
// Thread-safety: thread-safe.
#ifndef BNSERVE_SERVER_OPEN_INFERENCE_H_
#define BNSERVE_SERVER_OPEN_INFERENCE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/types.pb.h"
#include "inference/open_inference_grpc.pb.h"
#include "server/model_catalog.h"
#include "server/predictor.h"
#include "server/server_metrics.h"

namespace bnserve {

struct OpenInferenceOptions {
  // ServerReady waits for this model's latest version; empty: none.
  std::string default_model;
  // ServerReady is false while this returns false (a shared registry that
  // does not answer); null: the registry is always reachable.
  std::function<bool()> registry_ready;
};

class OpenInference {
 public:
  // Names of the protocol's tensors and of bnserve's platform.
  static constexpr const char* kInputName = "input";
  static constexpr const char* kProbabilitiesName = "probabilities";
  static constexpr const char* kPredictedClassName = "predicted_class";
  static constexpr const char* kPlatform = "bnserve_mlp";
  static constexpr const char* kBnModeParameter = "bn_mode";
  // ServerMetadata's name and version (the CMake project's, defined by
  // server/CMakeLists.txt).
  static constexpr const char* kServerName = "bnserve";
  static constexpr const char* kServerVersion = BNSERVE_VERSION;

  // The pointers must outlive this object; `metrics` may be null (nothing
  // recorded).
  OpenInference(ModelCatalog* catalog, const Predictor* predictor,
                const OpenInferenceOptions& options, ServerMetrics* metrics = nullptr)
      : catalog_(catalog), predictor_(predictor), options_(options), metrics_(metrics) {}

  OpenInference(const OpenInference&) = delete;
  OpenInference& operator=(const OpenInference&) = delete;

  // The ModelRef a V2 (name, version) pair names: a version string of
  // digits is a version number, any other non-empty string an alias.
  // InvalidArgument for a bad name, a version 0, or a bad alias.
  static absl::StatusOr<v1::ModelRef> ModelRefFromV2(const std::string& name,
                                                     const std::string& version);

  bool ServerLive() const { return true; }
  // False while options.registry_ready says the registry is unreachable;
  // otherwise whether the default model's latest version is ready (true
  // without a default model).
  bool ServerReady();

  // Whether the version is ready (see above). The catalog's errors for an
  // unknown model or version (NotFound) or a bad name (InvalidArgument).
  absl::StatusOr<bool> ModelReady(const std::string& name, const std::string& version);

  void ServerMetadata(inference::ServerMetadataResponse* response) const;

  // Name, versions (ascending), platform and tensors of the version the
  // request selects. Errors as ModelReady.
  absl::Status ModelMetadata(const inference::ModelMetadataRequest& request,
                             inference::ModelMetadataResponse* response);

  // Runs the request through the Predictor. The response's model_version is
  // the version number that answered, its id the request's. Records the
  // request in the metrics as one of `protocol` (the calling front end's:
  // kV2Grpc or kV2Http), received at `received` (when the front end first
  // had it, before its own parsing; the default: now).
  absl::Status ModelInfer(const inference::ModelInferRequest& request,
                          inference::ModelInferResponse* response, InferenceProtocol protocol,
                          absl::Time received = absl::InfinitePast());

  // Records in the metrics an inference request for model `name`, version
  // `version` (as the request names them) that the front end refused with
  // `status` before calling ModelInfer. REQUIRES: !status.ok().
  void RecordRefused(const std::string& name, const std::string& version,
                     InferenceProtocol protocol, const absl::Status& status, absl::Time received);

 private:
  // ModelInfer's work, without the metrics.
  absl::StatusOr<Prediction> RunModelInfer(const inference::ModelInferRequest& request,
                                           inference::ModelInferResponse* response);
  // The version a V2 (name, version) pair resolves to now; 0 if none.
  int ResolvedVersion(const std::string& name, const std::string& version);

  ModelCatalog* const catalog_;
  const Predictor* const predictor_;
  const OpenInferenceOptions options_;
  ServerMetrics* const metrics_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_OPEN_INFERENCE_H_
