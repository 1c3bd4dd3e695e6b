#include "server/server_metrics.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/logging.h"
#include "prometheus/text_serializer.h"

namespace bnserve {
namespace {

// Triton's failure reasons, in ModelSeries::failure order (Triton's
// metric_model_reporter.cc creates all four for every model version).
constexpr const char* kReasons[] = {"REJECTED", "CANCELED", "BACKEND", "OTHER"};

int ReasonIndex(const char* reason) {
  for (int i = 0; i < 4; ++i) {
    if (absl::string_view(kReasons[i]) == reason) return i;
  }
  return 3;
}

int ProtocolIndex(InferenceProtocol protocol) {
  switch (protocol) {
    case InferenceProtocol::kV1Grpc:
      return 0;
    case InferenceProtocol::kV2Grpc:
      return 1;
    case InferenceProtocol::kV2Http:
      return 2;
  }
  return 0;
}

int BnModeIndex(BnMode mode) { return mode == BnMode::kBatchStatistics ? 1 : 0; }

// A negative duration (the wall clock stepped back) counts as zero.
absl::Duration NonNegative(absl::Duration d) { return std::max(d, absl::ZeroDuration()); }

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  return family;
}

prometheus::ClientMetric Sample(double value, prometheus::MetricType type,
                                std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

// A family of one unlabelled sample.
prometheus::MetricFamily Single(const std::string& name, const std::string& help,
                                prometheus::MetricType type, double value) {
  prometheus::MetricFamily family = Family(name, help, type);
  family.metric.push_back(Sample(value, type));
  return family;
}

// "/package.Service/Method" -> ("package.Service", "Method"); a name of
// another shape is all method.
std::pair<std::string, std::string> SplitMethod(absl::string_view full_method) {
  const size_t last = full_method.rfind('/');
  if (last == absl::string_view::npos || last == 0 || full_method[0] != '/') {
    return {"", std::string(full_method)};
  }
  return {std::string(full_method.substr(1, last - 1)), std::string(full_method.substr(last + 1))};
}

}  // namespace

const std::vector<double>& ServerMetrics::InferenceLatencyBuckets() {
  static const std::vector<double>* const buckets =
      new std::vector<double>{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                              0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
  return *buckets;
}

const std::vector<double>& ServerMetrics::EpochDurationBuckets() {
  static const std::vector<double>* const buckets = new std::vector<double>{
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000};
  return *buckets;
}

const char* ServerMetrics::FailureReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kDeadlineExceeded:
      return "CANCELED";
    case absl::StatusCode::kUnavailable:
      return "REJECTED";
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return "BACKEND";
    default:
      return "OTHER";
  }
}

const char* ServerMetrics::GrpcCodeName(absl::StatusCode code) {
  // Go's codes.Code.String(), which go-grpc-prometheus writes.
  static constexpr const char* kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  const int number = static_cast<int>(code);
  return number >= 0 && number < 17 ? kNames[number] : "Unknown";
}

const char* ServerMetrics::ProtocolLabel(InferenceProtocol protocol) {
  switch (protocol) {
    case InferenceProtocol::kV1Grpc:
      return "v1_grpc";
    case InferenceProtocol::kV2Grpc:
      return "v2_grpc";
    case InferenceProtocol::kV2Http:
      return "v2_http";
  }
  return "v1_grpc";
}

const char* ServerMetrics::BnModeLabel(BnMode mode) {
  return mode == BnMode::kBatchStatistics ? "batch_statistics" : "inference";
}

ServerMetrics::ServerMetrics()
    // The six nv_inference_* families: Triton core's names and help texts
    // (src/metrics.cc), counters labelled model and version.
    : inference_success_(prometheus::BuildCounter()
                             .Name("nv_inference_request_success")
                             .Help("Number of successful inference requests, all batch sizes")
                             .Register(registry_)),
      inference_failure_(prometheus::BuildCounter()
                             .Name("nv_inference_request_failure")
                             .Help("Number of failed inference requests, all batch sizes")
                             .Register(registry_)),
      inference_count_(prometheus::BuildCounter()
                           .Name("nv_inference_count")
                           .Help("Number of inferences performed (does not include cached "
                                 "requests)")
                           .Register(registry_)),
      inference_exec_count_(prometheus::BuildCounter()
                                .Name("nv_inference_exec_count")
                                .Help("Number of model executions performed (does not include "
                                      "cached requests)")
                                .Register(registry_)),
      inference_request_duration_us_(
          prometheus::BuildCounter()
              .Name("nv_inference_request_duration_us")
              .Help("Cumulative inference request duration in microseconds (includes cached "
                    "requests)")
              .Register(registry_)),
      inference_compute_infer_duration_us_(
          prometheus::BuildCounter()
              .Name("nv_inference_compute_infer_duration_us")
              .Help("Cumulative compute inference duration in microseconds (does not include "
                    "cached requests)")
              .Register(registry_)),
      inference_request_seconds_(
          prometheus::BuildHistogram()
              .Name("bnserve_inference_request_duration_seconds")
              .Help("Latency of successful inference requests, from receiving the request to "
                    "its response being ready, by model, version, protocol and bn_mode")
              .Register(registry_)),
      inference_compute_seconds_(
          prometheus::BuildHistogram()
              .Name("bnserve_inference_compute_duration_seconds")
              .Help("Forward-pass time of successful inference requests, by model, version, "
                    "protocol and bn_mode")
              .Register(registry_)),
      epochs_(prometheus::BuildCounter()
                  .Name("bnserve_training_epochs_total")
                  .Help("Training epochs finished by this process")
                  .Register(registry_)
                  .Add({})),
      training_rows_(prometheus::BuildCounter()
                         .Name("bnserve_training_rows_total")
                         .Help("Training rows put through a gradient step by this process "
                               "(rate() gives rows per second)")
                         .Register(registry_)
                         .Add({})),
      training_rows_per_second_(
          prometheus::BuildGauge()
              .Name("bnserve_training_rows_per_second")
              .Help("Training rows per second of the last finished epoch (its rows over its "
                    "wall time, accuracy evaluation included)")
              .Register(registry_)
              .Add({})),
      epoch_seconds_(prometheus::BuildHistogram()
                         .Name("bnserve_training_epoch_duration_seconds")
                         .Help("Wall time of finished training epochs, accuracy evaluation "
                               "included")
                         .Register(registry_)
                         .Add({}, EpochDurationBuckets())),
      grpc_started_(prometheus::BuildCounter()
                        .Name("bnserve_grpc_server_started_total")
                        .Help("gRPC calls started on the server, by method")
                        .Register(registry_)),
      grpc_handled_(prometheus::BuildCounter()
                        .Name("bnserve_grpc_server_handled_total")
                        .Help("gRPC calls finished on the server, by method and status code")
                        .Register(registry_)) {
  prometheus::Family<prometheus::Counter>& unresolved =
      prometheus::BuildCounter()
          .Name("bnserve_inference_unresolved_requests_total")
          .Help(
              "Failed inference requests that named no stored model version (unknown "
              "model, version or alias, or a request too malformed to name one), by "
              "protocol; not in the per-model nv_inference_* counts")
          .Register(registry_);
  for (InferenceProtocol protocol :
       {InferenceProtocol::kV1Grpc, InferenceProtocol::kV2Grpc, InferenceProtocol::kV2Http}) {
    unresolved_[ProtocolIndex(protocol)] = &unresolved.Add({{"protocol", ProtocolLabel(protocol)}});
  }
}

ServerMetrics::ModelSeries* ServerMetrics::ModelSeriesLocked(const std::string& model,
                                                             int version) {
  std::unique_ptr<ModelSeries>& slot = models_[std::make_pair(model, version)];
  if (slot == nullptr) {
    slot = std::make_unique<ModelSeries>();
    const prometheus::Labels labels = {{"model", model}, {"version", absl::StrCat(version)}};
    slot->success = &inference_success_.Add(labels);
    for (int i = 0; i < 4; ++i) {
      prometheus::Labels with_reason = labels;
      with_reason["reason"] = kReasons[i];
      slot->failure[i] = &inference_failure_.Add(with_reason);
    }
    slot->inference_count = &inference_count_.Add(labels);
    slot->exec_count = &inference_exec_count_.Add(labels);
    slot->request_duration_us = &inference_request_duration_us_.Add(labels);
    slot->compute_infer_duration_us = &inference_compute_infer_duration_us_.Add(labels);
  }
  return slot.get();
}

void ServerMetrics::RecordInference(const InferenceRecord& record) {
  const int protocol = ProtocolIndex(record.protocol);
  if (record.version <= 0) {
    unresolved_[protocol]->Increment();
    return;
  }
  ModelSeries* series;
  prometheus::Histogram* request_seconds = nullptr;
  prometheus::Histogram* compute_seconds = nullptr;
  {
    absl::MutexLock lock(&mu_);
    series = ModelSeriesLocked(record.model, record.version);
    if (record.status.ok()) {
      const int mode = BnModeIndex(record.bn_mode);
      prometheus::Histogram*& request = series->request_seconds[protocol][mode];
      prometheus::Histogram*& compute = series->compute_seconds[protocol][mode];
      if (request == nullptr) {
        const prometheus::Labels labels = {{"model", record.model},
                                           {"version", absl::StrCat(record.version)},
                                           {"protocol", ProtocolLabel(record.protocol)},
                                           {"bn_mode", BnModeLabel(record.bn_mode)}};
        request = &inference_request_seconds_.Add(labels, InferenceLatencyBuckets());
        compute = &inference_compute_seconds_.Add(labels, InferenceLatencyBuckets());
      }
      request_seconds = request;
      compute_seconds = compute;
    }
  }
  // The counters and histograms are thread-safe themselves.
  if (!record.status.ok()) {
    series->failure[ReasonIndex(FailureReason(record.status.code()))]->Increment();
    return;
  }
  const absl::Duration request = NonNegative(record.request_duration);
  const absl::Duration compute = NonNegative(record.compute_duration);
  series->success->Increment();
  series->inference_count->Increment(static_cast<double>(std::max<int64_t>(0, record.rows)));
  series->exec_count->Increment();
  series->request_duration_us->Increment(static_cast<double>(absl::ToInt64Microseconds(request)));
  series->compute_infer_duration_us->Increment(
      static_cast<double>(absl::ToInt64Microseconds(compute)));
  request_seconds->Observe(absl::ToDoubleSeconds(request));
  compute_seconds->Observe(absl::ToDoubleSeconds(compute));
}

void ServerMetrics::RecordEpoch(const FinishedEpoch& epoch) {
  epochs_.Increment();
  training_rows_.Increment(static_cast<double>(std::max<int64_t>(0, epoch.rows)));
  if (epoch.seconds > 0) {
    training_rows_per_second_.Set(static_cast<double>(epoch.rows) / epoch.seconds);
  }
  epoch_seconds_.Observe(std::max(0.0, epoch.seconds));
}

ServerMetrics::GrpcMethodSeries* ServerMetrics::GrpcMethodLocked(absl::string_view full_method,
                                                                 absl::string_view type) {
  std::unique_ptr<GrpcMethodSeries>& slot = grpc_methods_[full_method];
  if (slot == nullptr) {
    slot = std::make_unique<GrpcMethodSeries>();
    const auto [service, method] = SplitMethod(full_method);
    slot->started = &grpc_started_.Add(
        {{"grpc_type", std::string(type)}, {"grpc_service", service}, {"grpc_method", method}});
  }
  return slot.get();
}

void ServerMetrics::RecordGrpcStarted(absl::string_view full_method, absl::string_view type) {
  prometheus::Counter* started;
  {
    absl::MutexLock lock(&mu_);
    started = GrpcMethodLocked(full_method, type)->started;
  }
  started->Increment();
}

void ServerMetrics::RecordGrpcHandled(absl::string_view full_method, absl::string_view type,
                                      absl::StatusCode code) {
  int number = static_cast<int>(code);
  if (number < 0 || number >= 17) number = static_cast<int>(absl::StatusCode::kUnknown);
  prometheus::Counter* handled;
  {
    absl::MutexLock lock(&mu_);
    GrpcMethodSeries* series = GrpcMethodLocked(full_method, type);
    prometheus::Counter*& slot = series->handled[number];
    if (slot == nullptr) {
      const auto [service, method] = SplitMethod(full_method);
      slot =
          &grpc_handled_.Add({{"grpc_type", std::string(type)},
                              {"grpc_service", service},
                              {"grpc_method", method},
                              {"grpc_code", GrpcCodeName(static_cast<absl::StatusCode>(number))}});
    }
    handled = slot;
  }
  handled->Increment();
}

void ServerMetrics::SetSources(MetricsSources sources) {
  MetricsSources old;
  {
    absl::MutexLock lock(&sources_mu_);
    old = std::exchange(sources_, std::move(sources));
  }
  // `old` (and whatever its functions hold) is released outside the lock.
}

void ServerMetrics::CollectSourcesLocked(std::vector<prometheus::MetricFamily>* families) {
  using prometheus::MetricType;
  if (sources_.jobs) {
    const JobStats stats = sources_.jobs();
    prometheus::MetricFamily jobs = Family(
        "bnserve_jobs", "Training jobs the server holds (every job it ran or restored), by state",
        MetricType::Gauge);
    for (const auto& [state, count] : {std::pair<const char*, int64_t>{"queued", stats.queued},
                                       {"running", stats.running},
                                       {"succeeded", stats.succeeded},
                                       {"failed", stats.failed},
                                       {"cancelled", stats.cancelled}}) {
      jobs.metric.push_back(
          Sample(static_cast<double>(count), MetricType::Gauge, {{"state", state}}));
    }
    families->push_back(std::move(jobs));
    families->push_back(Single("bnserve_job_queue_depth",
                               "Training jobs waiting in the queue for a worker", MetricType::Gauge,
                               static_cast<double>(stats.queue_depth)));
    families->push_back(Single("bnserve_job_queue_capacity",
                               "Queued jobs beyond which Train is refused (--max_queue)",
                               MetricType::Gauge, static_cast<double>(stats.queue_capacity)));
  }
  if (sources_.model_cache) {
    const ModelCacheStats stats = sources_.model_cache();
    families->push_back(Single("bnserve_model_cache_hits_total",
                               "Model loads answered from the cache of built networks",
                               MetricType::Counter, static_cast<double>(stats.hits)));
    families->push_back(Single("bnserve_model_cache_misses_total",
                               "Model loads that read and built the network from the registry",
                               MetricType::Counter, static_cast<double>(stats.misses)));
    families->push_back(Single("bnserve_model_cache_entries", "Networks in the model cache",
                               MetricType::Gauge, static_cast<double>(stats.entries)));
    families->push_back(Single("bnserve_model_cache_capacity",
                               "Networks the model cache keeps at most", MetricType::Gauge,
                               static_cast<double>(stats.capacity)));
  }
  if (sources_.models) {
    absl::StatusOr<std::vector<v1::Model>> models = sources_.models();
    if (!models.ok()) {
      BNSERVE_LOG(WARNING) << "metrics: listing the registry's models failed: " << models.status();
    } else {
      families->push_back(Single("bnserve_registry_models",
                                 "Models with at least one stored version", MetricType::Gauge,
                                 static_cast<double>(models->size())));
      prometheus::MetricFamily versions =
          Family("bnserve_registry_versions", "Stored versions of each model", MetricType::Gauge);
      for (const v1::Model& model : *models) {
        versions.metric.push_back(Sample(static_cast<double>(model.versions_size()),
                                         MetricType::Gauge, {{"model", model.name()}}));
      }
      families->push_back(std::move(versions));
    }
  }
}

std::string ServerMetrics::TextExposition() {
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  {
    absl::MutexLock lock(&sources_mu_);
    CollectSourcesLocked(&families);
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace bnserve
