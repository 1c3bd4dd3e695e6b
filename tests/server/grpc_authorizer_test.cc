// Access control end to end on a real server with --auth_tokens: every
// method of every registered service, called by each role, and the audit
// lines of the state-changing calls.
#include "server/grpc_authorizer.h"

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/diagnostics.grpc.pb.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/access_policy.h"
#include "client/http_client.h"
#include "server/bnserve_server.h"
#include "server/v2_rest_routes.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/server_test_util.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HexSha256;

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::TempPath;

// The services bnserve registers besides health and reflection.
const char* const kServices[] = {
    v1::TrainingService::service_full_name(), v1::InferenceService::service_full_name(),
    v1::ModelRegistry::service_full_name(),   v1::Diagnostics::service_full_name(),
    inference::GRPCInferenceService::service_full_name(),
};

std::vector<std::string> AllMethods() {
  // diagnostics.proto defines no message of its own: naming its descriptor
  // table keeps its object file (and the service's descriptor) in the link.
  const void* volatile keep = &descriptor_table_bnserve_2fv1_2fdiagnostics_2eproto;
  (void)keep;
  std::vector<std::string> methods;
  for (const char* name : kServices) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    EXPECT_NE(service, nullptr) << name;
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      methods.push_back(absl::StrCat("/", service->full_name(), "/", service->method(i)->name()));
    }
  }
  return methods;
}

// `method` with raw `request` bytes and, when not empty, a bearer token.
grpc::Status Call(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                  const std::string& token, const std::string& request = "") {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(request);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request_buffer, &response_buffer,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return status;
}

class GrpcAuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tokens_path_ = TempPath("tokens");
    WriteTokens("# test tokens\nalice viewer " + HexSha256("viewer-token") +
                "\nbob trainer " + HexSha256("trainer-token") + "\ncarol admin " +
                HexSha256("admin-token") + "\n");
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    options.auth_tokens_file = tokens_path_;
    options.http_listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    training_ = v1::TrainingService::NewStub(channel_);
    inference_ = v1::InferenceService::NewStub(channel_);
    registry_ = v1::ModelRegistry::NewStub(channel_);
  }

  void WriteTokens(const std::string& text) { std::ofstream(tokens_path_, std::ios::trunc) << text; }

  static std::unique_ptr<grpc::ClientContext> With(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  // Trains a small model as the trainer and waits for the job's end.
  v1::Job TrainAs(const std::string& token, const std::string& model) {
    v1::Job job;
    grpc::Status status = training_->Train(With(token).get(), SmallTrainRequest(model, 2), &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline && job.state() != v1::SUCCEEDED && job.state() != v1::FAILED) {
      absl::SleepFor(absl::Milliseconds(10));
      v1::GetJobRequest get;
      get.set_job_id(job.job_id());
      EXPECT_TRUE(training_->GetJob(With(token).get(), get, &job).ok());
    }
    return job;
  }

  grpc::Status PredictAs(const std::string& token, const std::string& model) {
    v1::PredictRequest request;
    request.mutable_model()->set_name(model);
    request.mutable_inputs()->add_shape(1);
    request.mutable_inputs()->add_shape(12);
    for (int i = 0; i < 12; ++i) request.mutable_inputs()->add_values(0.1f * i);
    v1::PredictResponse response;
    return inference_->Predict(With(token).get(), request, &response);
  }

  grpc::Status SetAliasAs(const std::string& token, const std::string& model) {
    v1::SetAliasRequest request;
    request.set_model_name(model);
    request.set_alias("production");
    request.set_version(1);
    v1::Model response;
    return registry_->SetAlias(With(token).get(), request, &response);
  }

  std::string tokens_path_;
  std::unique_ptr<BnserveServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelRegistry::Stub> registry_;
};

TEST_F(GrpcAuthorizerTest, ThePolicyTableCoversEveryMethodOfEveryService) {
  const std::vector<std::string> methods = AllMethods();
  EXPECT_GE(methods.size(), 21u);  // the 21 of today, none lost
  for (const std::string& method : methods) {
    EXPECT_NE(AccessPolicy::Find(method), nullptr)
        << method << " has no row in AccessPolicy's table (server/access_policy.cc)";
  }
}

// Each method, called with an empty request by no one and by each role: a
// caller below the method's role is refused before the handler does
// anything; one at or above it gets past the check (whatever the empty
// request then earns). This is what proves every handler checks first.
TEST_F(GrpcAuthorizerTest, EveryHandlerEnforcesItsRowForEveryRole) {
  struct Caller {
    std::string token;
    std::optional<Role> role;
  };
  const Caller callers[] = {{"", std::nullopt},
                            {"not-a-token", std::nullopt},
                            {"viewer-token", Role::kViewer},
                            {"trainer-token", Role::kTrainer},
                            {"admin-token", Role::kAdmin}};
  for (const std::string& method : AllMethods()) {
    const std::optional<Role> needed = AccessPolicy::RequiredRole(method, false);
    for (const Caller& caller : callers) {
      const grpc::Status status = Call(channel_, method, caller.token);
      const bool allowed = !needed.has_value() ||
                           (caller.role.has_value() && *caller.role >= *needed);
      SCOPED_TRACE(absl::StrCat(method, " as ", caller.token.empty() ? "(none)" : caller.token,
                                ": ", status.error_code(), " ", status.error_message()));
      if (allowed) {
        EXPECT_NE(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
        EXPECT_NE(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
      } else if (!caller.role.has_value()) {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
      } else {
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
        EXPECT_NE(status.error_message().find(absl::StrCat("needs role ", RoleName(*needed))),
                  std::string::npos);
      }
    }
  }
}

TEST_F(GrpcAuthorizerTest, RolesOnRealCalls) {
  // No token: UNAUTHENTICATED; the viewer may not train.
  EXPECT_EQ(PredictAs("", "m").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::Job job;
  EXPECT_EQ(training_->Train(With("viewer-token").get(), SmallTrainRequest("m", 2), &job)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // The trainer trains; the viewer predicts.
  ASSERT_EQ(TrainAs("trainer-token", "m").state(), v1::SUCCEEDED);
  EXPECT_TRUE(PredictAs("viewer-token", "m").ok());
  // Aliases and deletes are the admin's.
  EXPECT_EQ(SetAliasAs("viewer-token", "m").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status denied = SetAliasAs("trainer-token", "m");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(),
            "/bnserve.v1.ModelRegistry/SetAlias needs role admin; the token's role is trainer");
  v1::DeleteModelVersionRequest del;
  del.set_model_name("m");
  del.set_version(1);
  google::protobuf::Empty empty;
  EXPECT_EQ(registry_->DeleteModelVersion(With("viewer-token").get(), del, &empty).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(SetAliasAs("admin-token", "m").ok());
  // Nothing was deleted by the refused call.
  EXPECT_TRUE(PredictAs("viewer-token", "m").ok());
}

TEST_F(GrpcAuthorizerTest, JobsAndVersionsRecordWhoCreatedThem) {
  v1::Job job = TrainAs("trainer-token", "m");
  ASSERT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.created_by(), "bob");
  v1::GetModelRequest get;
  get.mutable_model()->set_name("m");
  v1::ModelVersion version;
  ASSERT_TRUE(registry_->GetModel(With("viewer-token").get(), get, &version).ok());
  EXPECT_EQ(version.created_by(), "bob");

  v1::ExportModelRequest export_request;
  export_request.mutable_model()->set_name("m");
  v1::ModelVersion exported;
  ASSERT_TRUE(registry_->ExportModel(With("admin-token").get(), export_request, &exported).ok());
  v1::ImportModelRequest import;
  *import.mutable_model() = exported;
  import.mutable_model()->set_created_by("someone-else");  // ignored
  import.set_model_name("copy");
  v1::ModelVersion imported;
  grpc::Status status = registry_->ImportModel(With("admin-token").get(), import, &imported);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(imported.created_by(), "carol");
}

TEST_F(GrpcAuthorizerTest, GetModelWithParametersNeedsAdmin) {
  ASSERT_EQ(TrainAs("admin-token", "m").state(), v1::SUCCEEDED);
  v1::GetModelRequest request;
  request.mutable_model()->set_name("m");
  v1::ModelVersion version;
  EXPECT_TRUE(registry_->GetModel(With("viewer-token").get(), request, &version).ok());
  EXPECT_EQ(version.tensors_size(), 0);
  request.set_include_parameters(true);
  for (const char* token : {"viewer-token", "trainer-token"}) {
    grpc::Status status = registry_->GetModel(With(token).get(), request, &version);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << token;
    EXPECT_NE(status.error_message().find("with include_parameters needs role admin"),
              std::string::npos)
        << status.error_message();
  }
  ASSERT_TRUE(registry_->GetModel(With("admin-token").get(), request, &version).ok());
  EXPECT_GT(version.tensors_size(), 0);
}

TEST_F(GrpcAuthorizerTest, HealthNeedsNoToken) {
  grpc::Status status;
  testing::HealthCheck(channel_, "", &status);
  EXPECT_TRUE(status.ok()) << status.error_message();
  inference::ServerLiveRequest request;
  inference::ServerLiveResponse response;
  grpc::ClientContext context;
  EXPECT_TRUE(
      inference::GRPCInferenceService::NewStub(channel_)->ServerLive(&context, request, &response)
          .ok());
}

TEST_F(GrpcAuthorizerTest, BearerSchemeIsRequired) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", "viewer-token");  // no "Bearer "
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  EXPECT_EQ(registry_->ListModels(&context, request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext lower;
  lower.AddMetadata("authorization", "bearer viewer-token");
  EXPECT_TRUE(registry_->ListModels(&lower, request, &response).ok());
}

TEST_F(GrpcAuthorizerTest, ReloadTokensSwapsWhoIsAccepted) {
  v1::ListModelsRequest request;
  v1::ListModelsResponse response;
  EXPECT_TRUE(registry_->ListModels(With("viewer-token").get(), request, &response).ok());
  WriteTokens("dave viewer " + HexSha256("new-token") + "\n");
  ASSERT_TRUE(server_->ReloadTokens().ok());
  EXPECT_EQ(registry_->ListModels(With("viewer-token").get(), request, &response).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(registry_->ListModels(With("new-token").get(), request, &response).ok());
  // A broken file keeps the tokens in use.
  WriteTokens("dave viewer new-token-in-plain-text\n");
  EXPECT_EQ(server_->ReloadTokens().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry_->ListModels(With("new-token").get(), request, &response).ok());
}

TEST_F(GrpcAuthorizerTest, StateChangingCallsAreAudited) {
  ASSERT_EQ(TrainAs("trainer-token", "m").state(), v1::SUCCEEDED);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(SetAliasAs("viewer-token", "m").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(SetAliasAs("admin-token", "m").ok());
  EXPECT_EQ(SetAliasAs("", "m\nforged line").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::Job job;
  ASSERT_TRUE(training_->Train(With("trainer-token").get(), SmallTrainRequest("n", 1), &job).ok());
  v1::StartSweepRequest start;
  *start.mutable_base() = SmallTrainRequest("s", 1);
  start.add_use_batchnorm(false);
  v1::Sweep sweep;
  ASSERT_TRUE(training_->StartSweep(With("trainer-token").get(), start, &sweep).ok());
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(sweep.sweep_id());
  ASSERT_TRUE(training_->CancelSweep(With("trainer-token").get(), cancel, &sweep).ok());
  EXPECT_EQ(sweep.created_by(), "bob");  // the trainer token's name, as Train records it
  EXPECT_TRUE(PredictAs("viewer-token", "m").ok());  // not audited
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("audit: caller=alice peer=ipv4:127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("method=/bnserve.v1.ModelRegistry/SetAlias model=\"m\" alias=\"production\" "
                     "version=1 result=PERMISSION_DENIED"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("audit: caller=carol "), std::string::npos) << log;
  EXPECT_NE(log.find("version=1 result=OK"), std::string::npos) << log;
  EXPECT_NE(log.find("audit: caller=unauthenticated "), std::string::npos) << log;
  EXPECT_NE(log.find("model=\"m\\nforged line\""), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("caller=bob ")), std::string::npos) << log;
  EXPECT_NE(log.find(absl::StrCat("method=/bnserve.v1.TrainingService/Train model=\"n\" job=\"",
                                  job.job_id(), "\" result=OK")),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(absl::StrCat("method=/bnserve.v1.TrainingService/StartSweep model=\"s\" "
                                  "sweep=\"", sweep.sweep_id(), "\" result=OK")),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(absl::StrCat("method=/bnserve.v1.TrainingService/CancelSweep sweep=\"",
                                  sweep.sweep_id(), "\" result=OK")),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("InferenceService/Predict"), std::string::npos) << log;
}

TEST_F(GrpcAuthorizerTest, EveryHttpRouteHasARow) {
  for (const HttpRoute& route : V2RestRoutes(server_->open_inference(), [] { return ""; })) {
    EXPECT_NE(AccessPolicy::Find(absl::StrCat(route.method, " ", route.pattern)), nullptr)
        << route.method << " " << route.pattern;
  }
}

TEST_F(GrpcAuthorizerTest, HttpRoutesNeedTheSameTokens) {
  HttpClient http;
  auto get = [&](const std::string& path, const std::string& token) {
    HttpClientRequest request;
    request.url = absl::StrCat("http://127.0.0.1:", server_->http_port(), path);
    if (!token.empty()) request.headers.push_back("Authorization: Bearer " + token);
    absl::StatusOr<HttpReply> reply = http.Send(request);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : HttpReply();
  };
  EXPECT_EQ(get("/v2/health/ready", "").status, 200);  // probes need no token
  HttpReply anonymous = get("/metrics", "");
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.Header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(get("/metrics", "wrong").status, 401);
  EXPECT_EQ(get("/metrics", "viewer-token").status, 200);
  EXPECT_EQ(get("/v2", "").status, 401);
  EXPECT_EQ(get("/v2", "viewer-token").status, 200);
}

TEST(GrpcAuthorizerParseTest, BearerToken) {
  EXPECT_EQ(GrpcAuthorizer::BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(GrpcAuthorizer::BearerToken("BEARER  abc "), "abc");
  EXPECT_FALSE(GrpcAuthorizer::BearerToken("Basic abc").has_value());
  EXPECT_FALSE(GrpcAuthorizer::BearerToken("Bearer ").has_value());
  EXPECT_FALSE(GrpcAuthorizer::BearerToken("abc").has_value());
}

TEST(GrpcAuthorizerLoopbackTest, IsLoopbackAddress) {
  for (const char* address : {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "[::1]:5"}) {
    EXPECT_TRUE(BnserveServer::IsLoopbackAddress(address)) << address;
  }
  for (const char* address :
       {"0.0.0.0:50051", "[::]:50051", "10.0.0.7:1", "example.com:1", "127.0.0.1.evil.com:1"}) {
    EXPECT_FALSE(BnserveServer::IsLoopbackAddress(address)) << address;
  }
}

}  // namespace
}  // namespace bnserve
