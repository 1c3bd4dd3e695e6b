// The Open Inference Protocol's GRPCInferenceService on a real server over
// TCP: ModelInfer answers with Predict's bits, errors keep Predict's status
// codes, and a model's health service turns SERVING once it is ready.
#include "server/open_inference_service.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/server_test_util.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HealthCheck;
using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::SyntheticData;
using ::testing::ElementsAre;

constexpr char kServing[] = "\x08\x01";

class OpenInferenceServiceTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    LoopbackServerTest::SetUp();
    v2_ = inference::GRPCInferenceService::NewStub(channel_);
    v1_ = v1::InferenceService::NewStub(channel_);
    training_ = v1::TrainingService::NewStub(channel_);
  }

  void Train(const std::string& name) {
    grpc::ClientContext context;
    v1::Job job;
    ASSERT_TRUE(training_->Train(&context, SmallTrainRequest(name, 2), &job).ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (job.state() != v1::SUCCEEDED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      grpc::ClientContext get;
      v1::GetJobRequest request;
      request.set_job_id(job.job_id());
      ASSERT_TRUE(training_->GetJob(&get, request, &job).ok());
      ASSERT_NE(job.state(), v1::FAILED) << job.ShortDebugString();
    }
    ASSERT_EQ(job.state(), v1::SUCCEEDED);
  }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    return v2_->ModelInfer(&context, request, response);
  }

  std::unique_ptr<inference::GRPCInferenceService::Stub> v2_;
  std::unique_ptr<v1::InferenceService::Stub> v1_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
};

TEST_F(OpenInferenceServiceTest, ModelInferOverTcpMatchesPredictBitForBit) {
  Train("small");
  const v1::InlineData data = SyntheticData(17, 12, 3, 11);
  v1::PredictRequest predict;
  predict.mutable_model()->set_name("small");
  *predict.mutable_inputs() = data.features();
  v1::PredictResponse expected;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(v1_->Predict(&context, predict, &expected).ok());
  }

  inference::ModelInferRequest request;
  request.set_model_name("small");
  request.set_model_version("1");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(17);
  input->add_shape(12);
  *input->mutable_contents()->mutable_fp32_contents() = data.features().values();
  inference::ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(17, 3));
  ASSERT_EQ(response.outputs(0).contents().fp32_contents_size(),
            expected.probabilities().values_size());
  EXPECT_EQ(std::memcmp(response.outputs(0).contents().fp32_contents().data(),
                        expected.probabilities().values().data(),
                        sizeof(float) * expected.probabilities().values_size()),
            0);
  EXPECT_THAT(response.outputs(1).contents().int_contents(),
              ::testing::ElementsAreArray(expected.predicted_classes()));

  // Raw contents in, raw contents out: the same bits.
  input->clear_contents();
  request.add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(data.features().values().data()),
      sizeof(float) * data.features().values_size());
  response.Clear();
  status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  ASSERT_EQ(response.raw_output_contents(0).size(),
            sizeof(float) * expected.probabilities().values_size());
  EXPECT_EQ(std::memcmp(response.raw_output_contents(0).data(),
                        expected.probabilities().values().data(),
                        response.raw_output_contents(0).size()),
            0);
}

TEST_F(OpenInferenceServiceTest, ErrorsKeepPredictsStatusCodes) {
  Train("small");
  inference::ModelInferRequest request;
  request.set_model_name("small");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(12);
  for (int i = 0; i < 24; ++i) input->mutable_contents()->add_fp32_contents(0.5f);
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());

  inference::ModelInferRequest bad = request;
  bad.mutable_inputs(0)->set_datatype("BYTES");
  EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = request;
  bad.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad = request;
  bad.set_model_name("missing");
  EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  bad = request;
  bad.set_model_version("2");
  EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  bad = request;
  bad.mutable_inputs(0)->set_shape(0, 10001);
  EXPECT_EQ(Infer(bad, &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  grpc::ClientContext context;
  inference::ModelReadyRequest ready;
  ready.set_name("missing");
  inference::ModelReadyResponse ready_response;
  EXPECT_EQ(v2_->ModelReady(&context, ready, &ready_response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(OpenInferenceServiceTest, LivenessReadinessAndMetadata) {
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(v2_->ServerLive(&context, inference::ServerLiveRequest(), &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse ready;
    ASSERT_TRUE(v2_->ServerReady(&context, inference::ServerReadyRequest(), &ready).ok());
    EXPECT_TRUE(ready.ready());  // no default model: ready once the registry is open
  }
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse metadata;
    ASSERT_TRUE(
        v2_->ServerMetadata(&context, inference::ServerMetadataRequest(), &metadata).ok());
    EXPECT_EQ(metadata.name(), "bnserve");
  }
  Train("small");
  grpc::Status health_status;
  HealthCheck(channel_, BnserveServer::ModelHealthServiceName("small"), &health_status);
  EXPECT_EQ(health_status.error_code(), grpc::StatusCode::NOT_FOUND);  // never loaded

  // ModelReady of an unloaded version starts its load and says so.
  bool ready = true;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int polls = 0;
  do {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name("small");
    inference::ModelReadyResponse response;
    ASSERT_TRUE(v2_->ModelReady(&context, request, &response).ok());
    if (polls++ == 0) {
      EXPECT_FALSE(response.ready());
    }
    ready = response.ready();
    if (!ready) absl::SleepFor(absl::Milliseconds(5));
  } while (!ready && absl::Now() < deadline);
  EXPECT_TRUE(ready);
  EXPECT_EQ(HealthCheck(channel_, BnserveServer::ModelHealthServiceName("small"), &health_status),
            std::string(kServing, 2));
  EXPECT_TRUE(health_status.ok());

  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("small");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(v2_->ModelMetadata(&context, request, &metadata).ok());
  EXPECT_EQ(metadata.platform(), "bnserve_mlp");
  EXPECT_THAT(metadata.versions(), ElementsAre("1"));
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 12));
}

}  // namespace
}  // namespace bnserve
