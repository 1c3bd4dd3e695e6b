// The Connect protocol on the assembled server's HTTP port, spoken with
// libcurl: unary calls in JSON and binary (answers equal to the same call
// over gRPC), Connect's error form and status codes, a server stream
// (WatchJob) in envelopes ending with the end-of-stream message, tokens and
// roles through the services' own authorizer, shutdown ending an open
// stream, and the dashboard's static files with their path checks.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "client/http_client.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/bnserve_server.h"
#include "server/token_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HexSha256;

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;
using ::nlohmann::json;
using ::testing::HasSubstr;

std::string Envelope(uint8_t flags, const std::string& payload) {
  std::string out(1, static_cast<char>(flags));
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  return out + payload;
}

struct Frame {
  uint8_t flags;
  std::string payload;
};

// The envelopes of a stream's body; fails the test on a torn one.
std::vector<Frame> Frames(const std::string& body) {
  std::vector<Frame> frames;
  size_t i = 0;
  while (i < body.size()) {
    EXPECT_GE(body.size() - i, 5u) << "torn envelope header";
    if (body.size() - i < 5) break;
    uint32_t n = 0;
    for (int k = 1; k < 5; ++k) n = (n << 8) | static_cast<uint8_t>(body[i + k]);
    EXPECT_LE(i + 5 + n, body.size()) << "torn envelope";
    frames.push_back({static_cast<uint8_t>(body[i]), body.substr(i + 5, n)});
    i += 5 + n;
  }
  return frames;
}

template <typename Message>
std::string ToJson(const Message& message) {
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(message, &out).ok());
  return out;
}

template <typename Message>
Message FromJson(const std::string& text) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << text;
  return message;
}

class ConnectGatewayTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& tokens_file = "", const std::string& web_root = "") {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    options.auth_tokens_file = tokens_file;
    options.web_root = web_root;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    base_ = absl::StrCat("http://127.0.0.1:", server_->http_port());
  }

  HttpReply Post(const std::string& path, const std::string& body,
                 const std::string& content_type = "application/json",
                 std::vector<std::string> headers = {}) {
    HttpClientRequest request;
    request.method = "POST";
    request.url = base_ + path;
    request.body = body;
    headers.push_back("Content-Type: " + content_type);
    request.headers = std::move(headers);
    absl::StatusOr<HttpReply> reply = client_.Send(request);
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : HttpReply{};
  }

  HttpReply Get(const std::string& path) {
    HttpClientRequest request;
    request.url = base_ + path;
    absl::StatusOr<HttpReply> reply = client_.Send(request);
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : HttpReply{};
  }

  // Trains `name` through the gateway and waits for the job to end.
  v1::Job TrainThroughGateway(const std::string& name, int epochs, std::vector<std::string> headers = {}) {
    HttpReply reply = Post("/bnserve.v1.TrainingService/Train",
                           ToJson(SmallTrainRequest(name, epochs)), "application/json", headers);
    EXPECT_EQ(reply.status, 200) << reply.body;
    v1::Job job = FromJson<v1::Job>(reply.body);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (job.state() != v1::SUCCEEDED && job.state() != v1::FAILED && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      reply = Post("/bnserve.v1.TrainingService/GetJob",
                   json{{"jobId", job.job_id()}}.dump(), "application/json", headers);
      EXPECT_EQ(reply.status, 200) << reply.body;
      job = FromJson<v1::Job>(reply.body);
    }
    return job;
  }

  std::unique_ptr<BnserveServer> server_;
  std::string base_;
  HttpClient client_;
};

TEST_F(ConnectGatewayTest, UnaryJsonAnswersAsGrpcDoes) {
  StartServer();
  const v1::Job job = TrainThroughGateway("small", 2);
  ASSERT_EQ(job.state(), v1::SUCCEEDED) << job.reason();
  EXPECT_EQ(job.epochs_size(), 2);

  // GetModel over Connect and over gRPC: the same message.
  const HttpReply reply = Post("/bnserve.v1.ModelRegistry/GetModel",
                               R"({"model": {"name": "small"}, "unknownField": 1})");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_THAT(reply.Header("Content-Type").value_or(""), HasSubstr("application/json"));
  const v1::ModelVersion over_http = FromJson<v1::ModelVersion>(reply.body);
  auto registry = v1::ModelRegistry::NewStub(server_->InProcessChannel());
  v1::GetModelRequest request;
  request.mutable_model()->set_name("small");
  v1::ModelVersion over_grpc;
  grpc::ClientContext context;
  ASSERT_TRUE(registry->GetModel(&context, request, &over_grpc).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(over_http, over_grpc))
      << over_http.DebugString() << "\nvs\n" << over_grpc.DebugString();
  EXPECT_EQ(over_http.version(), 1);
}

TEST_F(ConnectGatewayTest, UnaryProtoCodecGivesTheSameBytesAsGrpc) {
  StartServer();
  ASSERT_EQ(TrainThroughGateway("small", 1).state(), v1::SUCCEEDED);
  v1::PredictRequest request;
  request.mutable_model()->set_name("small");
  *request.mutable_inputs() = SyntheticData(5, 12, 3, 9).features();
  const HttpReply reply = Post("/bnserve.v1.InferenceService/Predict",
                               request.SerializeAsString(), "application/proto");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.Header("Content-Type").value_or(""), "application/proto");
  auto inference = v1::InferenceService::NewStub(server_->InProcessChannel());
  v1::PredictResponse over_grpc;
  grpc::ClientContext context;
  ASSERT_TRUE(inference->Predict(&context, request, &over_grpc).ok());
  EXPECT_EQ(reply.body, over_grpc.SerializeAsString());
}

TEST_F(ConnectGatewayTest, ErrorsAreConnectErrorsWithTheirHttpStatus) {
  StartServer();
  HttpReply reply = Post("/bnserve.v1.TrainingService/GetJob", R"({"jobId": "job-999999"})");
  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(json::parse(reply.body)["code"], "not_found");
  EXPECT_THAT(json::parse(reply.body)["message"].get<std::string>(), HasSubstr("job-999999"));

  reply = Post("/bnserve.v1.TrainingService/Train", R"({"modelName": "x"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(json::parse(reply.body)["code"], "invalid_argument");

  reply = Post("/bnserve.v1.TrainingService/GetJob", R"({"jobId": )");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(json::parse(reply.body)["code"], "invalid_argument");
  EXPECT_THAT(reply.body, HasSubstr("bnserve.v1.GetJobRequest"));

  reply = Post("/bnserve.v1.InferenceService/Predict", "\xff\xff\xff", "application/proto");
  EXPECT_EQ(reply.status, 400);

  reply = Post("/bnserve.v1.TrainingService/GetJob", "{}", "text/plain");
  EXPECT_EQ(reply.status, 415);
  EXPECT_THAT(reply.Header("Accept-Post").value_or(""), HasSubstr("application/json"));

  reply = Post("/bnserve.v1.TrainingService/GetJob", "{}", "application/json",
               {"Connect-Protocol-Version: 2"});
  EXPECT_EQ(reply.status, 400);

  reply = Post("/bnserve.v1.TrainingService/GetJob", "{}", "application/json",
               {"Content-Encoding: gzip"});
  EXPECT_EQ(reply.status, 501);
  EXPECT_EQ(json::parse(reply.body)["code"], "unimplemented");

  reply = Post("/bnserve.v1.TrainingService/GetJob", "{}", "application/json",
               {"Connect-Timeout-Ms: soon"});
  EXPECT_EQ(reply.status, 400);

  reply = Get("/bnserve.v1.TrainingService/GetJob");
  EXPECT_EQ(reply.status, 405);
  reply = Post("/bnserve.v1.TrainingService/NoSuchMethod", "{}");
  EXPECT_EQ(reply.status, 404);
}

TEST_F(ConnectGatewayTest, WatchJobStreamsEnvelopesAndEndsTheStream) {
  StartServer();
  const v1::Job job = TrainThroughGateway("small", 3);
  ASSERT_EQ(job.state(), v1::SUCCEEDED);
  HttpReply reply = Post("/bnserve.v1.TrainingService/WatchJob",
                         Envelope(0, json{{"jobId", job.job_id()}}.dump()),
                         "application/connect+json");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.Header("Content-Type").value_or(""), "application/connect+json");
  std::vector<Frame> frames = Frames(reply.body);
  ASSERT_GE(frames.size(), 5u);  // states, 3 epochs, finished, end
  EXPECT_EQ(frames.back().flags, 0x02);
  EXPECT_EQ(json::parse(frames.back().payload), json::object());
  int epochs = 0;
  for (size_t i = 0; i + 1 < frames.size(); ++i) {
    EXPECT_EQ(frames[i].flags, 0);
    const v1::JobEvent event = FromJson<v1::JobEvent>(frames[i].payload);
    if (event.has_epoch()) {
      EXPECT_EQ(event.epoch().epoch(), ++epochs);
    }
  }
  EXPECT_EQ(epochs, 3);
  EXPECT_TRUE(FromJson<v1::JobEvent>(frames[frames.size() - 2].payload).has_finished());

  // Binary envelopes decode to the same events.
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  reply = Post("/bnserve.v1.TrainingService/WatchJob", Envelope(0, request.SerializeAsString()),
               "application/connect+proto");
  frames = Frames(reply.body);
  ASSERT_GE(frames.size(), 2u);
  v1::JobEvent last;
  ASSERT_TRUE(last.ParseFromString(frames[frames.size() - 2].payload));
  EXPECT_EQ(last.finished().job_id(), job.job_id());

  // Errors of a stream are in its end message, with 200.
  reply = Post("/bnserve.v1.TrainingService/WatchJob",
               Envelope(0, R"({"jobId": "job-999999"})"), "application/connect+json");
  EXPECT_EQ(reply.status, 200);
  frames = Frames(reply.body);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].flags, 0x02);
  EXPECT_EQ(json::parse(frames[0].payload)["error"]["code"], "not_found");

  for (const std::string& bad : {std::string("{}"), Envelope(1, "{}"), Envelope(0, "{}") + "x"}) {
    reply = Post("/bnserve.v1.TrainingService/WatchJob", bad, "application/connect+json");
    frames = Frames(reply.body);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_NE(json::parse(frames[0].payload)["error"]["code"], "") << bad;
  }
  reply = Post("/bnserve.v1.TrainingService/WatchJob", Envelope(0, "{}"), "application/json");
  EXPECT_EQ(reply.status, 415);
}

TEST_F(ConnectGatewayTest, ASweepStartsAndStreamsToItsEndThroughTheGateway) {
  StartServer();
  v1::StartSweepRequest start;
  *start.mutable_base() = SmallTrainRequest("swept", 1);
  start.add_weight_init_stds(0.1);
  start.add_use_batchnorm(true);
  start.add_use_batchnorm(false);
  HttpReply reply =
      Post("/bnserve.v1.TrainingService/StartSweep", ToJson(start), "application/json");
  ASSERT_EQ(reply.status, 200) << reply.body;
  const v1::Sweep sweep = FromJson<v1::Sweep>(reply.body);
  ASSERT_EQ(sweep.points_size(), 2);
  reply = Post("/bnserve.v1.TrainingService/WatchSweep",
               Envelope(0, json{{"sweepId", sweep.sweep_id()}}.dump()),
               "application/connect+json");
  ASSERT_EQ(reply.status, 200);
  std::vector<Frame> frames = Frames(reply.body);
  ASSERT_GE(frames.size(), 3u);  // events, the sweep, end
  EXPECT_EQ(frames.back().flags, 0x02);
  const v1::SweepEvent last = FromJson<v1::SweepEvent>(frames[frames.size() - 2].payload);
  ASSERT_TRUE(last.has_finished());
  EXPECT_EQ(last.finished().finished_points(), 2);
  EXPECT_EQ(last.finished().points(1).state(), v1::SUCCEEDED);
  reply = Post("/bnserve.v1.TrainingService/GetSweep", json{{"sweepId", "sweep-999999"}}.dump(),
               "application/json");
  EXPECT_EQ(reply.status, 404) << reply.body;
}

TEST_F(ConnectGatewayTest, TokensAndRolesAreTheServicesOwn) {
  const std::string tokens = TempPath("tokens");
  std::ofstream(tokens) << "alice viewer " << HexSha256("viewer-token") << "\nbob trainer "
                        << HexSha256("trainer-token") << "\n";
  StartServer(tokens);
  HttpReply reply = Post("/bnserve.v1.ModelRegistry/ListModels", "{}");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(json::parse(reply.body)["code"], "unauthenticated");
  reply = Post("/bnserve.v1.ModelRegistry/ListModels", "{}", "application/json",
               {"Authorization: Bearer wrong"});
  EXPECT_EQ(reply.status, 401);
  reply = Post("/bnserve.v1.ModelRegistry/ListModels", "{}", "application/json",
               {"Authorization: Bearer viewer-token"});
  EXPECT_EQ(reply.status, 200) << reply.body;
  reply = Post("/bnserve.v1.TrainingService/Train", ToJson(SmallTrainRequest("small", 1)),
               "application/json", {"Authorization: Bearer viewer-token"});
  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(json::parse(reply.body)["code"], "permission_denied");
  const v1::Job job = TrainThroughGateway("small", 1, {"Authorization: Bearer trainer-token"});
  EXPECT_EQ(job.state(), v1::SUCCEEDED);
  EXPECT_EQ(job.created_by(), "bob");
  // A stream without a token ends with unauthenticated.
  reply = Post("/bnserve.v1.TrainingService/WatchJob",
               Envelope(0, json{{"jobId", job.job_id()}}.dump()), "application/connect+json");
  std::vector<Frame> frames = Frames(reply.body);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(json::parse(frames[0].payload)["error"]["code"], "unauthenticated");
}

TEST_F(ConnectGatewayTest, ShutdownEndsAnOpenStream) {
  StartServer();
  // Minutes of training: still running when the server shuts down.
  v1::TrainRequest slow = SmallTrainRequest("slow", 200, 4000);
  slow.mutable_network()->clear_hidden_sizes();
  slow.mutable_network()->add_hidden_sizes(512);
  slow.mutable_network()->add_hidden_sizes(512);
  HttpReply reply = Post("/bnserve.v1.TrainingService/Train", ToJson(slow));
  ASSERT_EQ(reply.status, 200) << reply.body;
  const std::string job_id = FromJson<v1::Job>(reply.body).job_id();
  HttpReply stream;
  std::thread watcher([&] {
    HttpClient client;
    HttpClientRequest request;
    request.method = "POST";
    request.url = base_ + "/bnserve.v1.TrainingService/WatchJob";
    request.body = Envelope(0, json{{"jobId", job_id}}.dump());
    request.headers = {"Content-Type: application/connect+json"};
    request.timeout = absl::Seconds(60);
    absl::StatusOr<HttpReply> got = client.Send(request);
    EXPECT_OK(got.status());
    if (got.ok()) stream = *got;
  });
  // Let the stream deliver a few epochs.
  absl::SleepFor(absl::Milliseconds(500));
  const absl::Time start = absl::Now();
  server_->Shutdown();
  watcher.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  const std::vector<Frame> frames = Frames(stream.body);
  ASSERT_GE(frames.size(), 2u);
  EXPECT_EQ(json::parse(frames[0].payload)["state"], "QUEUED");
  EXPECT_EQ(frames.back().flags, 0x02);
  EXPECT_EQ(json::parse(frames.back().payload)["error"]["code"], "unavailable")
      << frames.back().payload;
}

TEST_F(ConnectGatewayTest, ServesTheDashboardFilesAndNothingOutsideThem) {
  const std::string root = TempPath("web");
  std::filesystem::create_directories(root + "/assets");
  std::ofstream(root + "/index.html") << "<!doctype html><title>bnserve</title>";
  std::ofstream(root + "/assets/app-1234.js") << "console.log(1)";
  std::ofstream(TempPath("secret.txt")) << "secret";
  std::filesystem::create_symlink(TempPath("secret.txt").c_str(), root + "/link.txt");
  StartServer("", root);
  HttpReply reply = Get("/");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "<!doctype html><title>bnserve</title>");
  EXPECT_THAT(reply.Header("Content-Type").value_or(""), HasSubstr("text/html"));
  EXPECT_EQ(reply.Header("Cache-Control").value_or(""), "no-cache");
  EXPECT_THAT(reply.Header("Content-Security-Policy").value_or(""), HasSubstr("default-src 'self'"));
  reply = Get("/assets/app-1234.js");
  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.Header("Content-Type").value_or(""), HasSubstr("javascript"));
  EXPECT_THAT(reply.Header("Cache-Control").value_or(""), HasSubstr("immutable"));
  for (const char* path : {"/missing.js", "/assets/%2e%2e/index.html", "/link.txt",
                           "/assets", "/assets/..%2F..%2Fsecret.txt"}) {
    EXPECT_EQ(Get(path).status, 404) << path;
  }
  // The API and V2 routes still win over files.
  EXPECT_EQ(Get("/v2/health/live").status, 200);
}

}  // namespace
}  // namespace bnserve
