// ServerMetrics on its own: what each Record* call adds, read back from the
// text exposition; the scrape-time sources; and promtool's verdict on the
// whole exposition.
#include "server/server_metrics.h"

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/metrics_test_util.h"

namespace bnserve {
namespace {

using ::bnserve::testing::CountOf;
using ::bnserve::testing::ExpectHistogramsConsistent;
using ::bnserve::testing::ExpectPromtoolAccepts;
using ::bnserve::testing::MetricSample;
using ::bnserve::testing::ParseExposition;
using ::bnserve::testing::SumOf;
using ::testing::UnorderedElementsAre;

InferenceRecord Success(const std::string& model, int version, int64_t rows, absl::Duration request,
                        absl::Duration compute,
                        InferenceProtocol protocol = InferenceProtocol::kV1Grpc,
                        BnMode mode = BnMode::kInference) {
  InferenceRecord record;
  record.model = model;
  record.version = version;
  record.protocol = protocol;
  record.bn_mode = mode;
  record.rows = rows;
  record.request_duration = request;
  record.compute_duration = compute;
  return record;
}

InferenceRecord Failure(const std::string& model, int version, absl::Status status,
                        InferenceProtocol protocol = InferenceProtocol::kV1Grpc) {
  InferenceRecord record;
  record.model = model;
  record.version = version;
  record.protocol = protocol;
  record.rows = 7;  // not counted
  record.status = std::move(status);
  record.request_duration = absl::Milliseconds(3);  // not counted
  return record;
}

std::vector<MetricSample> Scrape(ServerMetrics& metrics,
                                 std::map<std::string, std::string>* types = nullptr) {
  return ParseExposition(metrics.TextExposition(), types);
}

const std::map<std::string, std::string> kM1 = {{"model", "m"}, {"version", "1"}};

TEST(ServerMetricsTest, TritonCountersFollowEveryRequestExactly) {
  ServerMetrics metrics;
  for (int i = 0; i < 3; ++i) {
    // Whole microseconds, truncated as Triton truncates nanoseconds / 1000.
    metrics.RecordInference(
        Success("m", 1, 5, absl::Nanoseconds(1500900), absl::Nanoseconds(700999)));
  }
  metrics.RecordInference(Failure("m", 1, absl::InvalidArgumentError("bad shape")));
  metrics.RecordInference(Failure("m", 1, absl::ResourceExhaustedError("batch too large")));
  metrics.RecordInference(Failure("m", 1, absl::CancelledError("client went away")));
  metrics.RecordInference(Failure("m", 1, absl::DataLossError("stored tensors")));
  metrics.RecordInference(Failure("m", 1, absl::UnavailableError("not ready")));
  metrics.RecordInference(Success("m", 2, 1, absl::Microseconds(10), absl::Microseconds(4)));

  std::map<std::string, std::string> types;
  const std::vector<MetricSample> samples = Scrape(metrics, &types);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_success", kM1), 3);
  EXPECT_EQ(SumOf(samples, "nv_inference_count", kM1), 15);
  EXPECT_EQ(SumOf(samples, "nv_inference_exec_count", kM1), 3);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_duration_us", kM1), 3 * 1500);
  EXPECT_EQ(SumOf(samples, "nv_inference_compute_infer_duration_us", kM1), 3 * 700);
  auto failures = [&](const char* reason) {
    return SumOf(samples, "nv_inference_request_failure",
                 {{"model", "m"}, {"version", "1"}, {"reason", reason}});
  };
  EXPECT_EQ(failures("OTHER"), 2);
  EXPECT_EQ(failures("CANCELED"), 1);
  EXPECT_EQ(failures("BACKEND"), 1);
  EXPECT_EQ(failures("REJECTED"), 1);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_failure", kM1), 5);
  // Version 2 is a series of its own; its four failure reasons exist at 0.
  const std::map<std::string, std::string> m2 = {{"model", "m"}, {"version", "2"}};
  EXPECT_EQ(SumOf(samples, "nv_inference_request_success", m2), 1);
  EXPECT_EQ(SumOf(samples, "nv_inference_count", m2), 1);
  EXPECT_EQ(CountOf(samples, "nv_inference_request_failure", m2), 4);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_failure", m2), 0);
  // Triton's types and labels: counters, labelled model and version (and reason).
  for (const char* name :
       {"nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
        "nv_inference_exec_count", "nv_inference_request_duration_us",
        "nv_inference_compute_infer_duration_us"}) {
    EXPECT_EQ(types[name], "counter") << name;
    for (const MetricSample& sample : samples) {
      if (sample.name != name) continue;
      std::vector<std::string> keys;
      for (const auto& [key, value] : sample.labels) keys.push_back(key);
      if (std::string(name) == "nv_inference_request_failure") {
        EXPECT_THAT(keys, UnorderedElementsAre("model", "version", "reason"));
      } else {
        EXPECT_THAT(keys, UnorderedElementsAre("model", "version"));
      }
    }
  }
}

TEST(ServerMetricsTest, FailureReasonsAreTritons) {
  using absl::StatusCode;
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kCancelled), "CANCELED");
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kDeadlineExceeded), "CANCELED");
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kUnavailable), "REJECTED");
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kInternal), "BACKEND");
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kDataLoss), "BACKEND");
  EXPECT_STREQ(ServerMetrics::FailureReason(StatusCode::kUnknown), "BACKEND");
  for (StatusCode code :
       {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kResourceExhausted,
        StatusCode::kFailedPrecondition, StatusCode::kOutOfRange}) {
    EXPECT_STREQ(ServerMetrics::FailureReason(code), "OTHER") << code;
  }
}

TEST(ServerMetricsTest, UnresolvedRequestsAreCountedByProtocolOnly) {
  ServerMetrics metrics;
  metrics.RecordInference(Failure("nope", 0, absl::NotFoundError("no model")));
  metrics.RecordInference(
      Failure("nope", 0, absl::NotFoundError("no model"), InferenceProtocol::kV2Http));
  metrics.RecordInference(
      Failure("bad name!", 0, absl::InvalidArgumentError("name"), InferenceProtocol::kV2Http));
  const std::vector<MetricSample> samples = Scrape(metrics);
  EXPECT_EQ(
      SumOf(samples, "bnserve_inference_unresolved_requests_total", {{"protocol", "v1_grpc"}}), 1);
  EXPECT_EQ(
      SumOf(samples, "bnserve_inference_unresolved_requests_total", {{"protocol", "v2_http"}}), 2);
  EXPECT_EQ(
      SumOf(samples, "bnserve_inference_unresolved_requests_total", {{"protocol", "v2_grpc"}}), 0);
  // No per-model series for names that are not models.
  EXPECT_EQ(CountOf(samples, "nv_inference_request_failure"), 0);
  EXPECT_EQ(CountOf(samples, "nv_inference_request_success"), 0);
}

TEST(ServerMetricsTest, LatencyHistogramsByProtocolAndBnModeCountSuccessesInSeconds) {
  ServerMetrics metrics;
  metrics.RecordInference(Success("m", 1, 1, absl::Microseconds(3000), absl::Microseconds(40)));
  metrics.RecordInference(Success("m", 1, 1, absl::Microseconds(80), absl::Microseconds(60)));
  metrics.RecordInference(Success("m", 1, 4, absl::Seconds(20), absl::Seconds(12),
                                  InferenceProtocol::kV2Http, BnMode::kBatchStatistics));
  metrics.RecordInference(Success("m", 1, 2, absl::Microseconds(200), absl::Microseconds(100),
                                  InferenceProtocol::kV2Grpc));
  metrics.RecordInference(Failure("m", 1, absl::InvalidArgumentError("x")));  // not observed

  const std::string text = metrics.TextExposition();
  std::map<std::string, std::string> types;
  const std::vector<MetricSample> samples = ParseExposition(text, &types);
  EXPECT_EQ(types["bnserve_inference_request_duration_seconds"], "histogram");
  EXPECT_EQ(types["bnserve_inference_compute_duration_seconds"], "histogram");
  std::map<std::string, std::string> v1_inference = {
      {"model", "m"}, {"version", "1"}, {"protocol", "v1_grpc"}, {"bn_mode", "inference"}};
  const std::string request = "bnserve_inference_request_duration_seconds";
  EXPECT_EQ(SumOf(samples, request + "_count", v1_inference), 2);
  EXPECT_DOUBLE_EQ(SumOf(samples, request + "_sum", v1_inference), 0.00308);
  auto bucket = [&](std::map<std::string, std::string> labels, const std::string& le) {
    labels["le"] = le;
    return SumOf(samples, request + "_bucket", labels);
  };
  EXPECT_EQ(bucket(v1_inference, "5e-05"), 0);
  EXPECT_EQ(bucket(v1_inference, "0.0001"), 1);  // the 80 us request
  EXPECT_EQ(bucket(v1_inference, "0.0025"), 1);
  EXPECT_EQ(bucket(v1_inference, "0.005"), 2);  // and the 3 ms one
  EXPECT_EQ(bucket(v1_inference, "+Inf"), 2);
  std::map<std::string, std::string> http_batch = {
      {"model", "m"}, {"version", "1"}, {"protocol", "v2_http"}, {"bn_mode", "batch_statistics"}};
  EXPECT_EQ(bucket(http_batch, "10"), 0);  // 20 s: beyond the last bound
  EXPECT_EQ(bucket(http_batch, "+Inf"), 1);
  EXPECT_EQ(SumOf(samples, "bnserve_inference_compute_duration_seconds_sum", http_batch), 12);
  EXPECT_EQ(SumOf(samples, request + "_count", {{"protocol", "v2_grpc"}}), 1);
  // One observation per success: the histograms' counts add up to Triton's.
  EXPECT_EQ(SumOf(samples, request + "_count"), SumOf(samples, "nv_inference_request_success"));
  EXPECT_EQ(SumOf(samples, "bnserve_inference_compute_duration_seconds_count"), 4);
  // Three series (v1_grpc/inference, v2_http/batch_statistics,
  // v2_grpc/inference) in each of the two families.
  EXPECT_EQ(ExpectHistogramsConsistent(text), 2 * 3 + 1 /* epoch durations */);
  EXPECT_EQ(CountOf(samples, request + "_bucket", v1_inference),
            static_cast<int>(ServerMetrics::InferenceLatencyBuckets().size()) + 1);
}

TEST(ServerMetricsTest, LatencyBucketsSpanFiftyMicrosecondsToTenSeconds) {
  const std::vector<double>& buckets = ServerMetrics::InferenceLatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_EQ(buckets.front(), 50e-6);
  EXPECT_EQ(buckets.back(), 10);
  for (size_t i = 1; i < buckets.size(); ++i) {
    EXPECT_GT(buckets[i], buckets[i - 1]);
    EXPECT_LE(buckets[i] / buckets[i - 1], 2.5);  // no decade with a single bucket
  }
}

TEST(ServerMetricsTest, EpochsRowsAndTheirDurations) {
  ServerMetrics metrics;
  metrics.RecordEpoch({"job-000001", "m", 1, 8000, 0.5});
  metrics.RecordEpoch({"job-000001", "m", 2, 8000, 0.25});
  const std::string text = metrics.TextExposition();
  std::map<std::string, std::string> types;
  const std::vector<MetricSample> samples = ParseExposition(text, &types);
  EXPECT_EQ(SumOf(samples, "bnserve_training_epochs_total"), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_training_rows_total"), 16000);
  EXPECT_EQ(SumOf(samples, "bnserve_training_rows_per_second"), 32000);  // the last epoch's
  EXPECT_EQ(SumOf(samples, "bnserve_training_epoch_duration_seconds_count"), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_training_epoch_duration_seconds_sum"), 0.75);
  EXPECT_EQ(SumOf(samples, "bnserve_training_epoch_duration_seconds_bucket", {{"le", "0.25"}}), 1);
  EXPECT_EQ(types["bnserve_training_epochs_total"], "counter");
  EXPECT_EQ(types["bnserve_training_rows_total"], "counter");
  EXPECT_EQ(types["bnserve_training_rows_per_second"], "gauge");
  EXPECT_EQ(ExpectHistogramsConsistent(text), 1);
}

TEST(ServerMetricsTest, GrpcCallsByMethodAndGoStyleCode) {
  ServerMetrics metrics;
  const std::string predict = "/bnserve.v1.InferenceService/Predict";
  for (int i = 0; i < 3; ++i) metrics.RecordGrpcStarted(predict, "unary");
  metrics.RecordGrpcHandled(predict, "unary", absl::StatusCode::kOk);
  metrics.RecordGrpcHandled(predict, "unary", absl::StatusCode::kOk);
  metrics.RecordGrpcHandled(predict, "unary", absl::StatusCode::kInvalidArgument);
  metrics.RecordGrpcStarted("/bnserve.v1.TrainingService/WatchJob", "server_stream");
  metrics.RecordGrpcHandled("/bnserve.v1.TrainingService/WatchJob", "server_stream",
                            absl::StatusCode::kCancelled);
  metrics.RecordGrpcHandled(predict, "unary", static_cast<absl::StatusCode>(99));

  const std::vector<MetricSample> samples = Scrape(metrics);
  const std::map<std::string, std::string> labels = {
      {"grpc_type", "unary"},
      {"grpc_service", "bnserve.v1.InferenceService"},
      {"grpc_method", "Predict"}};
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_started_total", labels), 3);
  auto handled = [&](std::map<std::string, std::string> with, const char* code) {
    with["grpc_code"] = code;
    return SumOf(samples, "bnserve_grpc_server_handled_total", with);
  };
  EXPECT_EQ(handled(labels, "OK"), 2);
  EXPECT_EQ(handled(labels, "InvalidArgument"), 1);
  EXPECT_EQ(handled(labels, "Unknown"), 1);  // no such code
  EXPECT_EQ(handled({{"grpc_type", "server_stream"},
                     {"grpc_service", "bnserve.v1.TrainingService"},
                     {"grpc_method", "WatchJob"}},
                    "Canceled"),
            1);
  EXPECT_EQ(CountOf(samples, "bnserve_grpc_server_handled_total"), 4);
  EXPECT_STREQ(ServerMetrics::GrpcCodeName(absl::StatusCode::kDeadlineExceeded),
               "DeadlineExceeded");
  EXPECT_STREQ(ServerMetrics::GrpcCodeName(absl::StatusCode::kUnauthenticated), "Unauthenticated");
}

TEST(ServerMetricsTest, SourcesAreReadAtEveryScrapeUntilCleared) {
  ServerMetrics metrics;
  std::atomic<int64_t> hits{5};
  bool models_fail = false;
  MetricsSources sources;
  sources.jobs = [] {
    JobStats stats;
    stats.queued = 2;
    stats.running = 1;
    stats.succeeded = 7;
    stats.failed = 3;
    stats.cancelled = 4;
    stats.queue_depth = 2;
    stats.queue_capacity = 64;
    return stats;
  };
  sources.model_cache = [&hits] {
    ModelCacheStats stats;
    stats.hits = hits.load();
    stats.misses = 2;
    stats.entries = 1;
    stats.capacity = 8;
    return stats;
  };
  sources.models = [&models_fail]() -> absl::StatusOr<std::vector<v1::Model>> {
    if (models_fail) return absl::InternalError("disk");
    std::vector<v1::Model> models(2);
    models[0].set_name("a");
    models[0].add_versions(1);
    models[0].add_versions(3);
    models[1].set_name("b");
    models[1].add_versions(1);
    return models;
  };
  metrics.SetSources(sources);

  std::map<std::string, std::string> types;
  std::vector<MetricSample> samples = Scrape(metrics, &types);
  EXPECT_EQ(SumOf(samples, "bnserve_jobs", {{"state", "queued"}}), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_jobs", {{"state", "running"}}), 1);
  EXPECT_EQ(SumOf(samples, "bnserve_jobs", {{"state", "succeeded"}}), 7);
  EXPECT_EQ(SumOf(samples, "bnserve_jobs", {{"state", "failed"}}), 3);
  EXPECT_EQ(SumOf(samples, "bnserve_jobs", {{"state", "cancelled"}}), 4);
  EXPECT_EQ(SumOf(samples, "bnserve_job_queue_depth"), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_job_queue_capacity"), 64);
  EXPECT_EQ(SumOf(samples, "bnserve_model_cache_hits_total"), 5);
  EXPECT_EQ(SumOf(samples, "bnserve_model_cache_misses_total"), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_model_cache_entries"), 1);
  EXPECT_EQ(SumOf(samples, "bnserve_model_cache_capacity"), 8);
  EXPECT_EQ(SumOf(samples, "bnserve_registry_models"), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_registry_versions", {{"model", "a"}}), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_registry_versions", {{"model", "b"}}), 1);
  EXPECT_EQ(types["bnserve_jobs"], "gauge");
  EXPECT_EQ(types["bnserve_model_cache_hits_total"], "counter");
  EXPECT_EQ(types["bnserve_model_cache_misses_total"], "counter");
  EXPECT_EQ(types["bnserve_registry_versions"], "gauge");

  hits = 9;
  models_fail = true;  // the registry's families are left out of this scrape only
  samples = Scrape(metrics);
  EXPECT_EQ(SumOf(samples, "bnserve_model_cache_hits_total"), 9);
  EXPECT_EQ(CountOf(samples, "bnserve_registry_models"), 0);
  EXPECT_EQ(CountOf(samples, "bnserve_registry_versions"), 0);
  EXPECT_EQ(CountOf(samples, "bnserve_jobs"), 5);

  metrics.SetSources({});
  samples = Scrape(metrics);
  EXPECT_EQ(CountOf(samples, "bnserve_jobs"), 0);
  EXPECT_EQ(CountOf(samples, "bnserve_model_cache_hits_total"), 0);
  EXPECT_EQ(CountOf(samples, "bnserve_training_epochs_total"), 1);  // the registry's own stay
}

// Every family with samples, as a busy server would show them.
std::string FullExposition() {
  ServerMetrics metrics;
  for (InferenceProtocol protocol :
       {InferenceProtocol::kV1Grpc, InferenceProtocol::kV2Grpc, InferenceProtocol::kV2Http}) {
    for (BnMode mode : {BnMode::kInference, BnMode::kBatchStatistics}) {
      metrics.RecordInference(Success("digits", 1, 256, absl::Microseconds(900),
                                      absl::Microseconds(600), protocol, mode));
    }
    metrics.RecordInference(Failure("digits", 1, absl::InvalidArgumentError("x"), protocol));
    metrics.RecordInference(Failure("nope", 0, absl::NotFoundError("x"), protocol));
  }
  metrics.RecordEpoch({"job-000001", "digits", 1, 8000, 0.1});
  metrics.RecordGrpcStarted("/bnserve.v1.InferenceService/Predict", "unary");
  metrics.RecordGrpcHandled("/bnserve.v1.InferenceService/Predict", "unary", absl::StatusCode::kOk);
  MetricsSources sources;
  sources.jobs = [] { return JobStats{}; };
  sources.model_cache = [] { return ModelCacheStats{}; };
  sources.models = []() -> absl::StatusOr<std::vector<v1::Model>> {
    std::vector<v1::Model> models(1);
    models[0].set_name("digits");
    models[0].add_versions(1);
    return models;
  };
  metrics.SetSources(sources);
  return metrics.TextExposition();
}

// promtool parses the exposition and lints it. Its only complaints are
// about Triton's six names (no _total suffix on counters, _count on two
// counters, "us" as a unit),
// which bnserve keeps on purpose so that Triton's dashboards work; every
// bnserve_ name passes the lint.
TEST(ServerMetricsTest, PromtoolChecksTheExpositionClean) {
  const std::vector<std::string> accepted = ExpectPromtoolAccepts(FullExposition());
  EXPECT_THAT(
      accepted,
      UnorderedElementsAre(
          "nv_inference_request_success counter metrics should have \"_total\" suffix",
          "nv_inference_request_failure counter metrics should have \"_total\" suffix",
          "nv_inference_count counter metrics should have \"_total\" suffix",
          "nv_inference_count non-histogram and non-summary metrics should not have "
          "\"_count\" suffix",
          "nv_inference_exec_count counter metrics should have \"_total\" suffix",
          "nv_inference_exec_count non-histogram and non-summary metrics should not have "
          "\"_count\" suffix",
          "nv_inference_request_duration_us counter metrics should have \"_total\" suffix",
          "nv_inference_request_duration_us metric names should not contain abbreviated units",
          "nv_inference_compute_infer_duration_us counter metrics should have \"_total\" suffix",
          "nv_inference_compute_infer_duration_us metric names should not contain abbreviated "
          "units"));
}

// The check fails for what it should fail for (a parse error, a lint on a
// name of ours), so the test above proves something.
TEST(ServerMetricsTest, PromtoolRejectsBrokenAndLintedExpositions) {
  const testing::PromtoolResult broken = testing::RunPromtool("# TYPE x counter\nx{a=\"1} 3\n");
  EXPECT_EQ(broken.exit_code, 1);
  const testing::PromtoolResult linted = testing::RunPromtool(
      "# HELP bnserve_things Things.\n# TYPE bnserve_things counter\n"
      "bnserve_things 3\n");
  EXPECT_EQ(linted.exit_code, 3);
  ASSERT_EQ(linted.lines.size(), 1u);
  EXPECT_FALSE(testing::IsAcceptedTritonLint(linted.lines[0])) << linted.lines[0];
}

TEST(ServerMetricsTest, ConcurrentRecordsAndScrapesLoseNothing) {
  ServerMetrics metrics;
  constexpr int kThreads = 4;
  constexpr int kRecords = 2000;
  std::atomic<bool> done{false};
  std::thread scraper([&] {
    while (!done.load()) ExpectHistogramsConsistent(metrics.TextExposition());
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < kRecords; ++i) {
        const std::string model = "m" + std::to_string(i % 3);
        if (i % 5 == 0) {
          metrics.RecordInference(Failure(model, 1, absl::InvalidArgumentError("x")));
        } else {
          metrics.RecordInference(Success(model, 1, t + 1, absl::Microseconds(100),
                                          absl::Microseconds(50),
                                          static_cast<InferenceProtocol>(i % 3)));
        }
        metrics.RecordGrpcHandled("/s.S/M", "unary", absl::StatusCode::kOk);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  done = true;
  scraper.join();
  const std::vector<MetricSample> samples = Scrape(metrics);
  const double successes = kThreads * kRecords * 4 / 5;
  EXPECT_EQ(SumOf(samples, "nv_inference_request_success"), successes);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_failure"), kThreads * kRecords / 5);
  EXPECT_EQ(SumOf(samples, "nv_inference_count"), (1 + 2 + 3 + 4) * kRecords * 4 / 5);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_duration_us"), successes * 100);
  EXPECT_EQ(SumOf(samples, "bnserve_inference_request_duration_seconds_count"), successes);
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_handled_total"), kThreads * kRecords);
}

}  // namespace
}  // namespace bnserve
