// The assembled server on a loopback port counts every gRPC call it serves
// by method and final status code: unary calls, a request gRPC cannot parse
// (with the INTERNAL the parse-failure interceptor sends, not gRPC's
// UNIMPLEMENTED), the raw ImportModel, and the server-streaming WatchJob
// whether it ends by itself or the client cancels it.
#include "server/grpc_metrics_interceptor.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/metrics_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::CountOf;
using ::bnserve::testing::MetricSample;
using ::bnserve::testing::ParseExposition;
using ::bnserve::testing::RawUnaryCall;
using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::SumOf;

// As in grpc_parse_failure_interceptor_test.cc: no message parses from it.
const std::string kUnparsable("\x0a\xff\xff\xff\xff\x0f", 6);

// A server on a loopback port (as LoopbackServerTest, with room for a job
// that runs until cancelled).
class GrpcMetricsInterceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.registry_path = testing::TempPath("registry.db");
    options.data_dir = "var/data";
    options.max_epochs = 5000;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  std::vector<MetricSample> Scrape() { return ParseExposition(server_->MetricsText()()); }

  // bnserve_grpc_server_handled_total of one method ("Service/Method"
  // without the package's leading slash split off) and code.
  double Handled(const std::string& service, const std::string& method, const std::string& code,
                 const std::string& type = "unary") {
    return SumOf(Scrape(), "bnserve_grpc_server_handled_total",
                 {{"grpc_service", service},
                  {"grpc_method", method},
                  {"grpc_code", code},
                  {"grpc_type", type}});
  }

  double Started(const std::string& service, const std::string& method) {
    return SumOf(Scrape(), "bnserve_grpc_server_started_total",
                 {{"grpc_service", service}, {"grpc_method", method}});
  }

  // Polls until Handled(...) reaches `expected` (a cancelled call is counted
  // when the server finishes it, after the client has already seen it end).
  double WaitForHandled(const std::string& service, const std::string& method,
                        const std::string& code, const std::string& type, double expected) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    double value = Handled(service, method, code, type);
    while (value < expected && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      value = Handled(service, method, code, type);
    }
    return value;
  }

  std::unique_ptr<BnserveServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

constexpr char kRegistry[] = "bnserve.v1.ModelRegistry";
constexpr char kTraining[] = "bnserve.v1.TrainingService";

TEST_F(GrpcMetricsInterceptorTest, CountsEveryUnaryCallByMethodAndTheCodeTheClientGot) {
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/ListModels", "").ok());
  }
  v1::GetJobRequest get;
  get.set_job_id("no-such-job");
  EXPECT_EQ(RawUnaryCall(channel_, "/bnserve.v1.TrainingService/GetJob", get.SerializeAsString())
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Rewritten from gRPC's UNIMPLEMENTED by the interceptor before this one.
  EXPECT_EQ(
      RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/ListModels", kUnparsable).error_code(),
      grpc::StatusCode::INTERNAL);
  // A raw method, which parses its own request.
  EXPECT_EQ(
      RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/ImportModel", kUnparsable).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(Handled(kRegistry, "ListModels", "OK"), 2);
  EXPECT_EQ(Handled(kRegistry, "ListModels", "Internal"), 1);
  EXPECT_EQ(Handled(kRegistry, "ListModels", "Unimplemented"), 0);
  EXPECT_EQ(Started(kRegistry, "ListModels"), 3);
  EXPECT_EQ(Handled(kTraining, "GetJob", "NotFound"), 1);
  EXPECT_EQ(Started(kTraining, "GetJob"), 1);
  EXPECT_EQ(Handled(kRegistry, "ImportModel", "InvalidArgument"), 1);
  EXPECT_EQ(Started(kRegistry, "ImportModel"), 1);
  // Nothing else was called (the channel's own health checks aside: none).
  const std::vector<MetricSample> samples = Scrape();
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_handled_total"), 5);
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_started_total"), 5);
}

TEST_F(GrpcMetricsInterceptorTest, CountsStreamsWhenTheyEndByThemselvesOrByTheClient) {
  auto training = v1::TrainingService::NewStub(channel_);
  v1::JobEvent event;
  {  // An unknown job: the stream ends at once with NOT_FOUND.
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id("job-999999");
    auto reader = training->WatchJob(&context, request);
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {  // A short job, watched to its end: OK.
    grpc::ClientContext context;
    v1::Job job;
    ASSERT_TRUE(training->Train(&context, SmallTrainRequest("short", 2), &job).ok());
    grpc::ClientContext watch_context;
    v1::WatchJobRequest request;
    request.set_job_id(job.job_id());
    auto reader = training->WatchJob(&watch_context, request);
    while (reader->Read(&event)) {
    }
    EXPECT_TRUE(reader->Finish().ok());
  }
  v1::Job long_job;
  {  // A long job, and a watcher that leaves after the first event.
    v1::TrainRequest long_request = SmallTrainRequest("long", 5000);
    long_request.set_batch_size(2);
    grpc::ClientContext context;
    ASSERT_TRUE(training->Train(&context, long_request, &long_job).ok());
    grpc::ClientContext watch_context;
    v1::WatchJobRequest request;
    request.set_job_id(long_job.job_id());
    auto reader = training->WatchJob(&watch_context, request);
    ASSERT_TRUE(reader->Read(&event));
    watch_context.TryCancel();
    while (reader->Read(&event)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_EQ(WaitForHandled(kTraining, "WatchJob", "Canceled", "server_stream", 1), 1);
  EXPECT_EQ(Handled(kTraining, "WatchJob", "NotFound", "server_stream"), 1);
  EXPECT_EQ(Handled(kTraining, "WatchJob", "OK", "server_stream"), 1);
  EXPECT_EQ(Started(kTraining, "WatchJob"), 3);
  EXPECT_EQ(Handled(kTraining, "Train", "OK"), 2);
  // The cancelled watch leaves the job running.
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(long_job.job_id());
  v1::Job cancelled;
  EXPECT_TRUE(training->CancelJob(&cancel_context, cancel, &cancelled).ok());
  EXPECT_EQ(Handled(kTraining, "CancelJob", "OK"), 1);
}

TEST_F(GrpcMetricsInterceptorTest, MethodsTheServerDoesNotHaveAreNotSeries) {
  EXPECT_EQ(RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/NoSuchMethod", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(RawUnaryCall(channel_, "/made.up.Service/Anything", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // A client cannot add series with names of its choosing: both are one
  // series.
  const std::vector<MetricSample> samples = Scrape();
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_handled_total",
                  {{"grpc_service", "unknown"},
                   {"grpc_method", "unknown"},
                   {"grpc_code", "Unimplemented"}}),
            2);
  EXPECT_EQ(CountOf(samples, "bnserve_grpc_server_handled_total"), 1);
  EXPECT_EQ(SumOf(samples, "bnserve_grpc_server_started_total",
                  {{"grpc_service", "unknown"}, {"grpc_method", "unknown"}}),
            2);
  EXPECT_EQ(
      CountOf(samples, "bnserve_grpc_server_handled_total", {{"grpc_method", "NoSuchMethod"}}), 0);
  EXPECT_EQ(
      CountOf(samples, "bnserve_grpc_server_handled_total", {{"grpc_service", "made.up.Service"}}),
      0);
}

}  // namespace
}  // namespace bnserve
