// ServerMetrics: the Prometheus metrics of one bnserve process and their text
// exposition, the answer of GET /metrics. It owns a prometheus::Registry
// (prometheus-cpp core only: the HTTP port that serves the text is not
// prometheus-cpp's Exposer) with the families below, and reads the state of
// the server's parts when it is scraped.
//
//   ServerMetrics metrics;
//   metrics.RecordInference(record);        // every front end, per request
//   metrics.SetSources({...});              // job manager, catalog, registry
//   std::string text = metrics.TextExposition();
//
// What is counted, and by whom (the README's "Metrics" lists every metric):
//  - Inference requests, by the three front ends (bnserve.v1 Predict, V2
//    ModelInfer over gRPC and over HTTP), each calling RecordInference once
//    per request after answering it: Triton's own per-model families
//    (nv_inference_*; names, types, labels, units and semantics of Triton's
//    core, so that Triton's Grafana boards work), and bnserve's latency
//    histograms by protocol and BatchNorm mode.
//  - Training epochs, by the JobManager's epoch listener (RecordEpoch).
//  - gRPC calls by method and code, by GrpcMetricsInterceptorFactory
//    (RecordGrpcStarted / RecordGrpcHandled).
//  - At scrape time, from SetSources: jobs by state, the training queue, the
//    model cache's hits and misses, the registry's models and versions.
// Series of one label set are created on first use (Triton's four failure
// reasons of a model version together, starting at 0).
//
// Thread-safety: thread-safe. Record* may be called from any thread,
// concurrently with each other and with TextExposition; each call takes a
// short internal lock at most (to find its series), so the hot paths do not
// wait for a scrape's sources.
#ifndef BNSERVE_SERVER_SERVER_METRICS_H_
#define BNSERVE_SERVER_SERVER_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bnserve/v1/model_registry.pb.h"
#include "core/bn_mode.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/job_manager.h"
#include "server/model_catalog.h"

namespace bnserve {

// The front end an inference request came through (label `protocol`).
enum class InferenceProtocol {
  kV1Grpc,  // "v1_grpc": bnserve.v1.InferenceService/Predict
  kV2Grpc,  // "v2_grpc": inference.GRPCInferenceService/ModelInfer
  kV2Http,  // "v2_http": POST /v2/models/{m}[/versions/{v}]/infer
};

// One finished inference request, as a front end saw it.
struct InferenceRecord {
  // The model as the request named it.
  std::string model;
  // The version that answered; for a failed request the version the
  // request's model reference resolves to (ModelCatalog::Resolve). 0 when it
  // resolves to none (unknown model, version or alias, a bad name, or a
  // request too malformed to name one): such a request has no model version
  // to be counted under (as in Triton, where a request for an unknown model
  // reaches no model's statistics) and is counted in
  // bnserve_inference_unresolved_requests_total only.
  int version = 0;
  InferenceProtocol protocol = InferenceProtocol::kV1Grpc;
  BnMode bn_mode = BnMode::kInference;
  // Rows of the batch (nv_inference_count); read for successful requests.
  int64_t rows = 0;
  // The request's outcome, as answered to the client.
  absl::Status status;
  // From the front end receiving the request to its response being ready
  // (parsing, checks, model lookup, forward pass, building the response).
  absl::Duration request_duration;
  // The forward pass alone (Prediction::compute_duration); successes only.
  absl::Duration compute_duration;
};

// What ServerMetrics reads when it is scraped. Each may be empty (its
// metrics are then left out). They run on the scraping thread, one scrape
// at a time, and must be thread-safe.
struct MetricsSources {
  // bnserve_jobs, bnserve_job_queue_depth, bnserve_job_queue_capacity.
  std::function<JobStats()> jobs;
  // bnserve_model_cache_{hits_total,misses_total,entries,capacity}.
  std::function<ModelCacheStats()> model_cache;
  // bnserve_registry_models and bnserve_registry_versions (every model with
  // at least one version). An error leaves them out of that scrape.
  std::function<absl::StatusOr<std::vector<v1::Model>>()> models;
};

class ServerMetrics {
 public:
  // Upper bounds, in seconds, of the inference latency histograms' buckets:
  // 50 us to 10 s, about three per decade.
  static const std::vector<double>& InferenceLatencyBuckets();
  // Upper bounds, in seconds, of the epoch duration histogram's buckets:
  // 10 ms to 1000 s.
  static const std::vector<double>& EpochDurationBuckets();

  // Triton's failure reason (label `reason` of nv_inference_request_failure)
  // for a request that ended with `code` (not OK): "CANCELED" for Cancelled
  // and DeadlineExceeded; "REJECTED" for Unavailable (the server would not
  // run it now: Triton's reason for a request its scheduler gave up on);
  // "BACKEND" for DataLoss, Internal and Unknown (the model itself failed);
  // "OTHER" for everything else (a request that fails the checks:
  // InvalidArgument, ResourceExhausted, NotFound, ... as Triton counts a
  // request its core refuses).
  static const char* FailureReason(absl::StatusCode code);

  // gRPC's code names as go-grpc-prometheus writes them (label grpc_code):
  // "OK", "Canceled", "InvalidArgument", ... ("Unknown" for a number that is
  // no code).
  static const char* GrpcCodeName(absl::StatusCode code);

  // The label value of `protocol` ("v1_grpc", "v2_grpc", "v2_http") and of a
  // BatchNorm mode ("inference", "batch_statistics").
  static const char* ProtocolLabel(InferenceProtocol protocol);
  static const char* BnModeLabel(BnMode mode);

  ServerMetrics();

  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // One finished inference request (see InferenceRecord). A resolved request
  // (version > 0) counts under (model, version): success, or failure with
  // FailureReason(status); a success also adds its rows, one execution
  // (bnserve runs each request as one batch), its durations in whole
  // microseconds (truncated, as Triton does), and one observation to the
  // latency histograms of its protocol and bn_mode. Durations and rows of
  // failed requests are not counted (as in Triton).
  void RecordInference(const InferenceRecord& record);

  // One finished training epoch: bnserve_training_epochs_total,
  // bnserve_training_rows_total, bnserve_training_rows_per_second (this
  // epoch's rows over its seconds) and bnserve_training_epoch_duration_seconds.
  void RecordEpoch(const FinishedEpoch& epoch);

  // A gRPC call of `full_method` ("/package.Service/Method") started, and
  // finished with `code`; `type` is go-grpc-prometheus's grpc_type
  // ("unary", "server_stream", "client_stream", "bidi_stream").
  void RecordGrpcStarted(absl::string_view full_method, absl::string_view type);
  void RecordGrpcHandled(absl::string_view full_method, absl::string_view type,
                         absl::StatusCode code);

  // Replaces the sources read at scrape time. After it returns, no scrape
  // runs the previous sources any more; so whatever they point at may be
  // destroyed once SetSources({}) has returned.
  void SetSources(MetricsSources sources);

  // Every metric in the Prometheus text format (version 0.0.4): the
  // registry's families, then those read from the sources.
  std::string TextExposition();

  // The registry, for families of other parts (e.g. an HTTP server's own).
  // Their names must not clash with the ones above.
  prometheus::Registry& registry() { return registry_; }

 private:
  // The families of one model version.
  struct ModelSeries {
    prometheus::Counter* success = nullptr;
    // By reason: kReasons order.
    std::array<prometheus::Counter*, 4> failure{};
    prometheus::Counter* inference_count = nullptr;
    prometheus::Counter* exec_count = nullptr;
    prometheus::Counter* request_duration_us = nullptr;
    prometheus::Counter* compute_infer_duration_us = nullptr;
    // By protocol and bn_mode; created on first use.
    std::array<std::array<prometheus::Histogram*, 2>, 3> request_seconds{};
    std::array<std::array<prometheus::Histogram*, 2>, 3> compute_seconds{};
  };
  // The counters of one gRPC method.
  struct GrpcMethodSeries {
    prometheus::Counter* started = nullptr;
    // By code (0..16); created on first use.
    std::array<prometheus::Counter*, 17> handled{};
  };

  ModelSeries* ModelSeriesLocked(const std::string& model, int version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  GrpcMethodSeries* GrpcMethodLocked(absl::string_view full_method, absl::string_view type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The families read from the sources, appended to `families`.
  void CollectSourcesLocked(std::vector<prometheus::MetricFamily>* families)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(sources_mu_);

  // Declared first: the families below live in it.
  prometheus::Registry registry_;

  prometheus::Family<prometheus::Counter>& inference_success_;
  prometheus::Family<prometheus::Counter>& inference_failure_;
  prometheus::Family<prometheus::Counter>& inference_count_;
  prometheus::Family<prometheus::Counter>& inference_exec_count_;
  prometheus::Family<prometheus::Counter>& inference_request_duration_us_;
  prometheus::Family<prometheus::Counter>& inference_compute_infer_duration_us_;
  prometheus::Family<prometheus::Histogram>& inference_request_seconds_;
  prometheus::Family<prometheus::Histogram>& inference_compute_seconds_;
  // By protocol.
  std::array<prometheus::Counter*, 3> unresolved_{};

  prometheus::Counter& epochs_;
  prometheus::Counter& training_rows_;
  prometheus::Gauge& training_rows_per_second_;
  prometheus::Histogram& epoch_seconds_;

  prometheus::Family<prometheus::Counter>& grpc_started_;
  prometheus::Family<prometheus::Counter>& grpc_handled_;

  absl::Mutex mu_;  // finding and creating series
  absl::flat_hash_map<std::pair<std::string, int>, std::unique_ptr<ModelSeries>> models_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<GrpcMethodSeries>> grpc_methods_
      ABSL_GUARDED_BY(mu_);

  absl::Mutex sources_mu_;  // held while a scrape reads the sources
  MetricsSources sources_ ABSL_GUARDED_BY(sources_mu_);
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_SERVER_METRICS_H_
