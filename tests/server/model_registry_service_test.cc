// ModelRegistryServiceImpl's ImportModel over a real server on a loopback
// port: a request that does not parse (random bytes, an export cut short)
// answers INVALID_ARGUMENT "not a valid exported model: ..." rather than
// gRPC's UNIMPLEMENTED, stores nothing, and a whole export still imports
// through the generated stub and as raw bytes.
#include "server/model_registry_service.h"

#include <memory>
#include <random>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/bnserve_server.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::RawUnaryCall;
using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kImportModel[] = "/bnserve.v1.ModelRegistry/ImportModel";

class ModelRegistryServiceTest : public testing::LoopbackServerTest {
 protected:
  void SetUp() override {
    LoopbackServerTest::SetUp();
    registry_ = v1::ModelRegistry::NewStub(channel_);
  }

  // Trains a small model "source" and returns its export.
  v1::ModelVersion TrainAndExport() {
    v1::Job job;
    {
      grpc::ClientContext context;
      std::unique_ptr<v1::TrainingService::Stub> training = v1::TrainingService::NewStub(channel_);
      EXPECT_TRUE(training->Train(&context, SmallTrainRequest("source", 1), &job).ok());
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (job.state() != v1::SUCCEEDED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      EXPECT_NE(job.state(), v1::FAILED) << job.reason();
      job = server_->jobs()->Get(job.job_id()).value_or(job);
    }
    EXPECT_EQ(job.state(), v1::SUCCEEDED);
    grpc::ClientContext context;
    v1::ExportModelRequest request;
    request.mutable_model()->set_name("source");
    v1::ModelVersion exported;
    grpc::Status status = registry_->ExportModel(&context, request, &exported);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return exported;
  }

  // The names of the stored models.
  std::vector<std::string> ModelNames() {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    EXPECT_TRUE(registry_->ListModels(&context, v1::ListModelsRequest(), &models).ok());
    std::vector<std::string> names;
    for (const v1::Model& model : models.models()) names.push_back(model.name());
    return names;
  }

  std::unique_ptr<v1::ModelRegistry::Stub> registry_;
};

TEST_F(ModelRegistryServiceTest, RandomBytesAreInvalidArgumentNotUnimplemented) {
  std::mt19937_64 rng(7);
  std::string bytes(4096, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  ASSERT_FALSE(v1::ImportModelRequest().ParseFromString(bytes)) << "the bytes must not parse";

  grpc::Status status = RawUnaryCall(channel_, kImportModel, bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), StartsWith("not a valid exported model: "));
  EXPECT_THAT(ModelNames(), ::testing::IsEmpty());
}

TEST_F(ModelRegistryServiceTest, AnExportCutAtThreeFifthsIsInvalidArgument) {
  v1::ImportModelRequest request;
  *request.mutable_model() = TrainAndExport();
  request.set_model_name("copy");
  const std::string whole = request.SerializeAsString();
  const std::string cut = whole.substr(0, whole.size() * 3 / 5);
  ASSERT_FALSE(v1::ImportModelRequest().ParseFromString(cut)) << "the cut must not parse";

  grpc::Status status = RawUnaryCall(channel_, kImportModel, cut);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), StartsWith("not a valid exported model: "));
  EXPECT_THAT(status.error_message(), HasSubstr(std::to_string(cut.size()) + " bytes"));
  EXPECT_THAT(ModelNames(), ::testing::ElementsAre("source"));
}

TEST_F(ModelRegistryServiceTest, AWholeExportImportsThroughTheStubAndAsRawBytes) {
  v1::ImportModelRequest request;
  *request.mutable_model() = TrainAndExport();
  request.set_model_name("copy");
  {
    grpc::ClientContext context;
    v1::ModelVersion imported;
    grpc::Status status = registry_->ImportModel(&context, request, &imported);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(imported.model_name(), "copy");
    EXPECT_EQ(imported.version(), 1);
    EXPECT_EQ(imported.job_id(), "");
    EXPECT_EQ(imported.network().SerializeAsString(),
              request.model().network().SerializeAsString());
  }
  std::string response;
  grpc::Status status =
      RawUnaryCall(channel_, kImportModel, request.SerializeAsString(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::ModelVersion imported;
  ASSERT_TRUE(imported.ParseFromString(response));
  EXPECT_EQ(imported.model_name(), "copy");
  EXPECT_EQ(imported.version(), 2);

  // The imported tensors are the exported ones.
  grpc::ClientContext context;
  v1::GetModelRequest get;
  get.mutable_model()->set_name("copy");
  get.mutable_model()->set_version(2);
  get.set_include_parameters(true);
  v1::ModelVersion stored;
  ASSERT_TRUE(registry_->GetModel(&context, get, &stored).ok());
  ASSERT_EQ(stored.tensors_size(), request.model().tensors_size());
  for (int i = 0; i < stored.tensors_size(); ++i) {
    EXPECT_EQ(stored.tensors(i).SerializeAsString(),
              request.model().tensors(i).SerializeAsString());
  }
}

TEST_F(ModelRegistryServiceTest, AnExportThatParsesButDoesNotFitItsConfigIsStillRejected) {
  v1::ImportModelRequest request;
  *request.mutable_model() = TrainAndExport();
  request.mutable_model()->mutable_tensors()->RemoveLast();
  grpc::Status status = RawUnaryCall(channel_, kImportModel, request.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::Not(StartsWith("not a valid exported model")));
}

}  // namespace
}  // namespace bnserve
