// The assembled server on a loopback port answers a request that does not
// parse with INTERNAL naming the method, on every method of every bnserve
// service (gRPC 1.51 alone answers UNIMPLEMENTED with an empty message, "no
// such method"), except ImportModel, which parses its own request and answers
// INVALID_ARGUMENT. Good requests, handler errors, methods that parse their
// own requests and unknown methods keep their answers.
#include "server/grpc_parse_failure_interceptor.h"

#include <memory>
#include <string>
#include <vector>

#include "bnserve/v1/diagnostics.grpc.pb.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
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
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

// Field 1, length-delimited, with a length of 2^32 - 1 and no bytes after it:
// no message parses from this, whatever its fields.
const std::string kUnparsable("\x0a\xff\xff\xff\xff\x0f", 6);

struct Method {
  std::string path;  // "/bnserve.v1.Service/Method"
  const google::protobuf::Descriptor* request_type;
};

// Every method of the bnserve services.
std::vector<Method> EveryBnserveMethod() {
  std::vector<Method> methods;
  for (const char* service_name : {v1::TrainingService::service_full_name(),
                                   v1::InferenceService::service_full_name(),
                                   v1::ModelRegistry::service_full_name()}) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_name);
    EXPECT_NE(service, nullptr) << service_name;
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      methods.push_back({"/" + service->full_name() + "/" + service->method(i)->name(),
                         service->method(i)->input_type()});
    }
  }
  // diagnostics.proto declares no message, so nothing links its descriptor
  // into this binary: its one method by hand.
  methods.push_back({"/bnserve.v1.Diagnostics/Echo", v1::PredictRequest::descriptor()});
  return methods;
}

class ParseFailureInterceptorTest : public testing::LoopbackServerTest {};

TEST_F(ParseFailureInterceptorTest, EveryMethodAnswersAnUnparsableRequestInternal) {
  const std::vector<Method> methods = EveryBnserveMethod();
  ASSERT_GE(methods.size(), 15u);  // 5 + 2 + 7 + 1 when this test was written
  for (const auto& [method, request_type] : methods) {
    SCOPED_TRACE(method);
    std::unique_ptr<google::protobuf::Message> request(
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(request_type)->New());
    ASSERT_FALSE(request->ParseFromString(kUnparsable));
    grpc::Status status = RawUnaryCall(channel_, method, kUnparsable);
    if (method == "/bnserve.v1.ModelRegistry/ImportModel") {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("not a valid exported model"));
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
      EXPECT_EQ(status.error_message(), "cannot parse the request of " + method);
      EXPECT_EQ(status.error_message(), ParseFailureMessage(method));
    }
  }
  // gRPC's health service parses its own request (a raw method) and answers
  // INVALID_ARGUMENT; that passes through unchanged.
  grpc::Status health = RawUnaryCall(channel_, "/grpc.health.v1.Health/Check", kUnparsable);
  EXPECT_EQ(health.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << health.error_message();
}

TEST_F(ParseFailureInterceptorTest, GoodRequestsAndUnknownMethodsKeepTheirAnswers) {
  // Before and after an unparsable request: an empty ListModelsRequest is OK.
  for (int i = 0; i < 2; ++i) {
    std::string response;
    grpc::Status status =
        RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/ListModels", "", &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/ListModels", kUnparsable)
                  .error_code(),
              grpc::StatusCode::INTERNAL);
  }
  // An error the handler itself returns passes through unchanged.
  v1::GetJobRequest get;
  get.set_job_id("no-such-job");
  grpc::Status not_found =
      RawUnaryCall(channel_, "/bnserve.v1.TrainingService/GetJob", get.SerializeAsString());
  EXPECT_EQ(not_found.error_code(), grpc::StatusCode::NOT_FOUND) << not_found.error_message();
  // A method that does not exist is still UNIMPLEMENTED.
  EXPECT_EQ(RawUnaryCall(channel_, "/bnserve.v1.ModelRegistry/NoSuchMethod", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace bnserve
