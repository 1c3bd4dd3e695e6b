// The default model: trained once at the first start with --default_model,
// servable afterwards, and not trained again after a restart.
#include "server/default_model.h"

#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/sanitizers.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::kSanitizerSlowdown;
using ::bnserve::testing::TempPath;

BnserveServerOptions DefaultModelOptions(const std::string& registry) {
  BnserveServerOptions options;
  options.listen = "";  // in-process only
  options.registry_path = registry;
  options.data_dir = "var/data";
  options.default_model = "digits";
  return options;
}

// Waits until the model's only job has finished and returns it (60 s, longer
// under ASan, where training is several times slower).
v1::Job WaitForOnlyJob(JobManager* jobs) {
  v1::ListJobsRequest list;
  list.set_model_name("digits");
  const absl::Time deadline = absl::Now() + absl::Seconds(60 * kSanitizerSlowdown);
  v1::ListJobsResponse response;
  while (absl::Now() < deadline) {
    absl::StatusOr<v1::ListJobsResponse> listed = jobs->List(list);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (!listed.ok()) break;
    response = *listed;
    if (response.jobs_size() == 1 && response.jobs(0).state() != v1::QUEUED &&
        response.jobs(0).state() != v1::RUNNING) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(response.jobs_size(), 1);
  return response.jobs_size() > 0 ? response.jobs(0) : v1::Job();
}

TEST(DefaultModelTest, RequestIsTheBooksSeedNetworkWithBatchNorm) {
  const v1::TrainRequest request = DefaultModelRequest("digits");
  EXPECT_EQ(request.model_name(), "digits");
  EXPECT_EQ(request.network().input_size(), 784);
  ASSERT_EQ(request.network().hidden_sizes_size(), 5);
  for (int width : request.network().hidden_sizes()) EXPECT_EQ(width, 100);
  EXPECT_EQ(request.network().output_size(), 10);
  EXPECT_TRUE(request.network().use_batchnorm());
  EXPECT_EQ(request.optimizer().type(), v1::SGD);
  EXPECT_EQ(request.train_data().builtin().name(), "mnist-digits");
  EXPECT_EQ(request.validation_data().builtin().split(), v1::TEST);
}

TEST(DefaultModelTest, TrainedAtFirstStartServableAndNotRetrainedAfterRestart) {
  const std::string registry = TempPath("registry.db");
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BnserveServer> server,
                         BnserveServer::Start(DefaultModelOptions(registry)));
    const v1::Job job = WaitForOnlyJob(server->jobs());
    ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason();
    EXPECT_EQ(job.model_version(), 1);
    ASSERT_EQ(job.epochs_size(), 20);
    // The seed network with BN learns the digits: far above chance (0.1).
    EXPECT_GT(job.epochs(19).validation_accuracy(), 0.85);

    // Predict through the service answers with the default model.
    std::unique_ptr<v1::InferenceService::Stub> stub =
        v1::InferenceService::NewStub(server->InProcessChannel());
    v1::PredictRequest predict;
    predict.mutable_model()->set_name("digits");
    predict.mutable_inputs()->add_shape(2);
    predict.mutable_inputs()->add_shape(784);
    predict.mutable_inputs()->mutable_values()->Resize(2 * 784, 0.5f);
    v1::PredictResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Predict(&context, predict, &response).ok());
    EXPECT_EQ(response.model_version(), 1);
    EXPECT_EQ(response.predicted_classes_size(), 2);
    server->Shutdown(absl::Seconds(1));
  }
  {
    // A restart finds the job and trains nothing new.
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<BnserveServer> server,
                         BnserveServer::Start(DefaultModelOptions(registry)));
    v1::ListJobsRequest list;
    list.set_model_name("digits");
    ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse jobs, server->jobs()->List(list));
    ASSERT_EQ(jobs.jobs_size(), 1);
    EXPECT_EQ(jobs.jobs(0).state(), v1::SUCCEEDED);
    server->Shutdown(absl::Seconds(1));
  }
}

TEST(DefaultModelTest, NoDefaultModelWithoutTheOption) {
  BnserveServerOptions options = DefaultModelOptions(TempPath("registry.db"));
  options.default_model.clear();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<BnserveServer> server, BnserveServer::Start(options));
  ASSERT_OK_AND_ASSIGN(v1::ListJobsResponse jobs, server->jobs()->List(v1::ListJobsRequest()));
  EXPECT_EQ(jobs.jobs_size(), 0);
  server->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace bnserve
