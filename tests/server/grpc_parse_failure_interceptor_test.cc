// The assembled server on a loopback port answers a request that does not
// parse with INTERNAL naming the method, on every method of every bnserve
// service (gRPC 1.51 alone answers UNIMPLEMENTED with an empty message, "no
// such method"), except ImportModel, which parses its own request and answers
// INVALID_ARGUMENT. Good requests, handler errors, methods that parse their
// own requests and unknown methods keep their answers.
#include "server/grpc_parse_failure_interceptor.h"

#include <atomic>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "bnserve/v1/diagnostics.grpc.pb.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "server/access_policy.h"
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

// Echo that throws std::bad_alloc on its first `throws` calls, as a handler
// whose allocation fails would, then echoes.
class ThrowingDiagnostics final : public v1::Diagnostics::CallbackService {
 public:
  explicit ThrowingDiagnostics(int throws) : throws_(throws) {}
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::PredictRequest* request,
                                 v1::PredictResponse* response) override {
    if (throws_-- > 0) throw std::bad_alloc();
    response->set_model_name(request->model().name());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  std::atomic<int> throws_;
};

// A server of ThrowingDiagnostics with the interceptor, `implemented`
// saying whether Echo counts as implemented; Echo's status.
grpc::Status EchoThroughThrowingHandler(std::optional<bool> implemented, int throws, int calls,
                                        std::string* last_model_name) {
  ThrowingDiagnostics service(throws);
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> factories;
  ParseFailureInterceptorFactory::ImplementedPredicate predicate;  // null: the default
  if (implemented.has_value()) {
    predicate = [implemented](const std::string&) { return *implemented; };
  }
  factories.push_back(std::make_unique<ParseFailureInterceptorFactory>(predicate));
  builder.experimental().SetInterceptorCreators(std::move(factories));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  auto stub = v1::Diagnostics::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
  grpc::Status status;
  for (int i = 0; i < calls; ++i) {
    v1::PredictRequest request;
    request.mutable_model()->set_name("m");
    v1::PredictResponse response;
    grpc::ClientContext context;
    status = stub->Echo(&context, request, &response);
    if (i + 1 < calls) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
    }
    *last_model_name = response.model_name();
  }
  server->Shutdown();
  return status;
}

TEST(ParseFailureInterceptorHandlerTest, AHandlerThatThrowsAnswersInternalAndTheServerServesOn) {
  std::string name;
  grpc::Status status = EchoThroughThrowingHandler(/*implemented=*/true, 1, 1, &name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(status.error_message(), HandlerExceptionMessage("/bnserve.v1.Diagnostics/Echo"));
  EXPECT_THAT(status.error_message(), HasSubstr("out of memory"));
  // Two throws, then the third call is answered.
  status = EchoThroughThrowingHandler(/*implemented=*/true, 2, 3, &name);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(name, "m");
}

TEST(ParseFailureInterceptorHandlerTest, AMethodTheServerDoesNotImplementStaysUnimplemented) {
  std::string name;
  const grpc::Status status = EchoThroughThrowingHandler(/*implemented=*/false, 1, 1, &name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST(ParseFailureInterceptorHandlerTest, TheDefaultPredicateIsTheAccessPolicysTable) {
  // Echo has a row in AccessPolicy's table: implemented.
  ASSERT_NE(AccessPolicy::Find("/bnserve.v1.Diagnostics/Echo"), nullptr);
  std::string name;
  const grpc::Status status = EchoThroughThrowingHandler(std::nullopt, 1, 1, &name);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << status.error_message();
}

}  // namespace
}  // namespace bnserve
