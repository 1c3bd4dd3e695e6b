// DiagnosticsService (the load tool's gRPC floor) through an in-process server.
#include "server/diagnostics_service.h"

#include <memory>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bnserve {
namespace {

class DiagnosticsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Diagnostics::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  grpc::Status Echo(const v1::PredictRequest& request, v1::PredictResponse* response) {
    grpc::ClientContext context;
    return stub_->Echo(&context, request, response);
  }

  DiagnosticsService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Diagnostics::Stub> stub_;
};

v1::PredictRequest RequestOf(int rows, int features) {
  v1::PredictRequest request;
  request.mutable_model()->set_name("anything");
  request.mutable_inputs()->add_shape(rows);
  request.mutable_inputs()->add_shape(features);
  for (int i = 0; i < rows * features; ++i) request.mutable_inputs()->add_values(0.5f * i);
  return request;
}

TEST_F(DiagnosticsServiceTest, AnswersWithAPredictSizedResponse) {
  v1::PredictResponse response;
  ASSERT_TRUE(Echo(RequestOf(7, 784), &response).ok());
  ASSERT_EQ(response.probabilities().shape_size(), 2);
  EXPECT_EQ(response.probabilities().shape(0), 7);
  EXPECT_EQ(response.probabilities().shape(1), DiagnosticsService::kEchoClasses);
  ASSERT_EQ(response.probabilities().values_size(), 7 * DiagnosticsService::kEchoClasses);
  for (float p : response.probabilities().values()) EXPECT_FLOAT_EQ(p, 0.1f);
  EXPECT_EQ(response.predicted_classes_size(), 7);
  EXPECT_EQ(response.model_name(), "anything");
  EXPECT_EQ(response.model_version(), 0);
}

TEST_F(DiagnosticsServiceTest, RejectsInputsWhoseShapeDoesNotMatch) {
  v1::PredictResponse response;
  v1::PredictRequest short_values = RequestOf(3, 4);
  short_values.mutable_inputs()->mutable_values()->RemoveLast();
  EXPECT_EQ(Echo(short_values, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::PredictRequest flat = RequestOf(3, 4);
  flat.mutable_inputs()->mutable_shape()->RemoveLast();
  EXPECT_EQ(Echo(flat, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Echo(v1::PredictRequest(), &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// A shape whose element count overflows int64 (2^32 * 2^32 wraps to 0, the
// number of values sent): refused, not answered with an empty batch.
TEST_F(DiagnosticsServiceTest, RejectsShapesWhoseElementCountOverflows) {
  v1::PredictResponse response;
  v1::PredictRequest request;
  request.mutable_inputs()->add_shape(int64_t{1} << 32);
  request.mutable_inputs()->add_shape(int64_t{1} << 32);
  grpc::Status status = Echo(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("18446744073709551616"));
}

}  // namespace
}  // namespace bnserve
