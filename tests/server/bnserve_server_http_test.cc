// The assembled server's HTTP port, spoken to with libcurl over loopback:
// every Open Inference REST route, /infer in JSON (flat and nested) and in
// binary tensor data against bnserve.v1 Predict of the same rows (equal bit
// for bit), BatchNorm modes, each error's HTTP status, and shutdown closing
// the port; GET /metrics, which promtool accepts and whose counters follow
// the REST traffic exactly.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "client/http_client.h"
#include "gmock/gmock.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/bnserve_server.h"
#include "tests/server/metrics_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;
using ::nlohmann::json;
using ::testing::HasSubstr;

constexpr int kFeatures = 12;  // SmallTrainRequest's input size
constexpr int kClasses = 3;

std::string FloatBytes(const float* values, size_t n) {
  return std::string(reinterpret_cast<const char*>(values), n * sizeof(float));
}

class BnserveServerHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BnserveServerOptions options;
    options.listen = "127.0.0.1:0";
    options.http_listen = "127.0.0.1:0";
    options.registry_path = TempPath("registry.db");
    options.data_dir = "var/data";
    options.max_batch = 64;
    options.max_message_mb = 1;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    ASSERT_GT(server_->http_port(), 0);
    ASSERT_NE(server_->http_port(), server_->port());
    auto channel = server_->InProcessChannel();
    training_ = v1::TrainingService::NewStub(channel);
    inference_ = v1::InferenceService::NewStub(channel);
    TrainSmall("small");
  }

  void TrainSmall(const std::string& name) {
    v1::Job job;
    {
      grpc::ClientContext context;
      grpc::Status status = training_->Train(&context, SmallTrainRequest(name, 2), &job);
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (job.state() != v1::SUCCEEDED && absl::Now() < deadline) {
      ASSERT_NE(job.state(), v1::FAILED) << job.reason();
      absl::SleepFor(absl::Milliseconds(10));
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(job.job_id());
      ASSERT_TRUE(training_->GetJob(&context, request, &job).ok());
    }
    ASSERT_EQ(job.state(), v1::SUCCEEDED);
  }

  v1::PredictResponse Predict(const v1::Tensor& inputs, v1::BnMode mode = v1::INFERENCE) {
    v1::PredictRequest request;
    request.mutable_model()->set_name("small");
    *request.mutable_inputs() = inputs;
    request.set_bn_mode(mode);
    v1::PredictResponse response;
    grpc::ClientContext context;
    grpc::Status status = inference_->Predict(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  HttpReply Call(const std::string& method, const std::string& path, const std::string& body = "",
                 std::vector<std::string> headers = {}) {
    HttpClientRequest request;
    request.method = method;
    request.url = absl::StrCat("http://127.0.0.1:", server_->http_port(), path);
    request.body = body;
    request.headers = std::move(headers);
    absl::StatusOr<HttpReply> reply = client_.Send(request);
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : HttpReply{};
  }

  // Polls GET `path` (a model's /ready) until it answers 200, for up to 10 s;
  // every answer before is 503 {"name": model, "ready": false} (the version
  // loads in the background after the first ask). Returns the last reply.
  HttpReply WaitUntilReady(const std::string& path, const std::string& model) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    HttpReply reply = Call("GET", path);
    while (reply.status != 200 && absl::Now() < deadline) {
      EXPECT_EQ(reply.status, 503) << path << ": " << reply.body;
      EXPECT_EQ(Json(reply), json({{"name", model}, {"ready", false}})) << path;
      absl::SleepFor(absl::Milliseconds(10));
      reply = Call("GET", path);
    }
    return reply;
  }

  // The reply's JSON body (null if it is none).
  static json Json(const HttpReply& reply) {
    return json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  }

  // A JSON infer request of `rows` (flat data, or nested rows).
  static std::string JsonInfer(const v1::Tensor& rows, bool nested, const json& parameters = {}) {
    json data = json::array();
    const int n = static_cast<int>(rows.shape(0));
    for (int r = 0; r < n; ++r) {
      json row = json::array();
      for (int c = 0; c < kFeatures; ++c) {
        const double value = rows.values(r * kFeatures + c);
        (nested ? row : data).push_back(value);
      }
      if (nested) data.push_back(row);
    }
    json request = {{"id", "req-7"},
                    {"inputs", json::array({{{"name", "input"},
                                             {"shape", {n, kFeatures}},
                                             {"datatype", "FP32"},
                                             {"data", data}}})}};
    if (!parameters.is_null()) request["parameters"] = parameters;
    return request.dump();
  }

  // Expects a JSON infer reply equal, bit for bit, to `expected`.
  static void ExpectJsonAnswerEquals(const HttpReply& reply, const v1::PredictResponse& expected) {
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_EQ(reply.Header("Content-Type"), "application/json");
    const json body = Json(reply);
    EXPECT_EQ(body["model_name"], "small");
    EXPECT_EQ(body["model_version"], "1");
    EXPECT_EQ(body["id"], "req-7");
    ASSERT_EQ(body["outputs"].size(), 2u);
    const json& probabilities = body["outputs"][0];
    EXPECT_EQ(probabilities["name"], "probabilities");
    EXPECT_EQ(probabilities["datatype"], "FP32");
    EXPECT_EQ(probabilities["shape"], json(expected.probabilities().shape()));
    ASSERT_EQ(probabilities["data"].size(),
              static_cast<size_t>(expected.probabilities().values_size()));
    for (size_t i = 0; i < probabilities["data"].size(); ++i) {
      const float got = static_cast<float>(probabilities["data"][i].get<double>());
      const float want = expected.probabilities().values(static_cast<int>(i));
      EXPECT_EQ(std::memcmp(&got, &want, sizeof(float)), 0) << i << ": " << got << " vs " << want;
    }
    const json& classes = body["outputs"][1];
    EXPECT_EQ(classes["name"], "predicted_class");
    EXPECT_EQ(classes["datatype"], "INT32");
    EXPECT_EQ(classes["data"], json(expected.predicted_classes()));
  }

  std::unique_ptr<BnserveServer> server_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  HttpClient client_;
};

TEST_F(BnserveServerHttpTest, HealthMetadataAndReadinessRoutes) {
  HttpReply live = Call("GET", "/v2/health/live");
  EXPECT_EQ(live.status, 200);
  EXPECT_EQ(Json(live), json::parse(R"({"live":true})"));
  HttpReply ready = Call("GET", "/v2/health/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(Json(ready), json::parse(R"({"ready":true})"));

  const json server = Json(Call("GET", "/v2"));
  EXPECT_EQ(server["name"], "bnserve");
  EXPECT_TRUE(server["version"].is_string());
  EXPECT_TRUE(server["extensions"].is_array());

  for (const char* path : {"/v2/models/small", "/v2/models/small/versions/1"}) {
    HttpReply reply = Call("GET", path);
    ASSERT_EQ(reply.status, 200) << path << ": " << reply.body;
    const json model = Json(reply);
    EXPECT_EQ(model["name"], "small");
    EXPECT_EQ(model["versions"], json::parse(R"(["1"])"));
    EXPECT_EQ(model["platform"], "bnserve_mlp");
    EXPECT_EQ(model["inputs"][0]["shape"], json::parse("[-1,12]"));
    EXPECT_EQ(model["inputs"][0]["datatype"], "FP32");
  }
  for (const char* path : {"/v2/models/small/ready", "/v2/models/small/versions/1/ready"}) {
    HttpReply reply = WaitUntilReady(path, "small");
    EXPECT_EQ(reply.status, 200) << path;
    EXPECT_EQ(Json(reply), json::parse(R"({"name":"small","ready":true})")) << path;
  }
}

TEST(BnserveServerHttpReadinessTest, ServerIsNotReadyUntilTheDefaultModelIs) {
  BnserveServerOptions options;
  options.listen = "127.0.0.1:0";
  options.http_listen = "127.0.0.1:0";
  options.registry_path = TempPath("registry.db");
  options.data_dir = "var/data";
  // Training the default model takes seconds; the first answer comes before.
  options.default_model = "digits";
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
  ASSERT_OK(server.status());
  HttpClient client;
  HttpClientRequest request;
  request.url = absl::StrCat("http://127.0.0.1:", (*server)->http_port(), "/v2/health/ready");
  ASSERT_OK_AND_ASSIGN(HttpReply ready, client.Send(request));
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.Header("Content-Type"), "application/json");
  EXPECT_EQ(json::parse(ready.body), json::parse(R"({"ready":false})"));
  // Liveness does not wait for models.
  request.url = absl::StrCat("http://127.0.0.1:", (*server)->http_port(), "/v2/health/live");
  ASSERT_OK_AND_ASSIGN(HttpReply live, client.Send(request));
  EXPECT_EQ(live.status, 200);
  (*server)->Shutdown(absl::Seconds(2));
}

TEST_F(BnserveServerHttpTest, UnknownModelsVersionsAndRoutesAre404BadNamesAre400) {
  for (const char* path :
       {"/v2/models/nope", "/v2/models/nope/ready", "/v2/models/small/versions/9",
        "/v2/models/small/versions/9/ready", "/v2/models/small/versions/prod", "/v2/nothing"}) {
    HttpReply reply = Call("GET", path);
    EXPECT_EQ(reply.status, 404) << path;
    EXPECT_TRUE(Json(reply)["error"].is_string()) << path << ": " << reply.body;
  }
  // Path segments are percent-decoded before the name is checked.
  HttpReply bad_name = Call("GET", "/v2/models/a%2Fb/ready");
  EXPECT_EQ(bad_name.status, 400);
  EXPECT_THAT(Json(bad_name)["error"].get<std::string>(), HasSubstr("\"a/b\""));
  EXPECT_EQ(Call("GET", "/v2/models/small/versions/0").status, 400);
  // A percent-encoded name that decodes to the model's own.
  EXPECT_EQ(WaitUntilReady("/v2/models/sm%61ll/ready", "small").status, 200);
  EXPECT_EQ(Call("POST", "/v2/models/small/ready").status, 405);
  EXPECT_EQ(Call("GET", "/v2/models/small/infer").status, 405);
}

TEST_F(BnserveServerHttpTest, JsonInferEqualsPredictBitForBitFlatAndNested) {
  const v1::Tensor rows = SyntheticData(5, kFeatures, kClasses, 99).features();
  const v1::PredictResponse expected = Predict(rows);
  ExpectJsonAnswerEquals(Call("POST", "/v2/models/small/infer", JsonInfer(rows, false)), expected);
  ExpectJsonAnswerEquals(Call("POST", "/v2/models/small/versions/1/infer", JsonInfer(rows, true)),
                         expected);
}

TEST_F(BnserveServerHttpTest, BatchStatisticsModeEqualsPredictsBatchStatistics) {
  const v1::Tensor rows = SyntheticData(6, kFeatures, kClasses, 5).features();
  const v1::PredictResponse expected = Predict(rows, v1::BATCH_STATISTICS);
  ASSERT_NE(expected.probabilities().values(0), Predict(rows).probabilities().values(0));
  ExpectJsonAnswerEquals(
      Call("POST", "/v2/models/small/infer",
           JsonInfer(rows, false, json{{"bn_mode", "batch_statistics"}})),
      expected);
}

TEST_F(BnserveServerHttpTest, BinaryInferEqualsPredictBitForBit) {
  const v1::Tensor rows = SyntheticData(7, kFeatures, kClasses, 3).features();
  const v1::PredictResponse expected = Predict(rows);
  const std::string data = FloatBytes(rows.values().data(), rows.values_size());
  const std::string header =
      json{{"inputs", json::array({{{"name", "input"},
                                    {"shape", {7, kFeatures}},
                                    {"datatype", "FP32"},
                                    {"parameters", {{"binary_data_size", data.size()}}}}})},
           {"parameters", {{"binary_data_output", true}}}}
          .dump();
  HttpReply reply =
      Call("POST", "/v2/models/small/infer", header + data,
           {absl::StrCat("Inference-Header-Content-Length: ", header.size()),
            "Content-Type: application/octet-stream"});
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.Header("Content-Type"), "application/octet-stream");
  ASSERT_TRUE(reply.Header("Inference-Header-Content-Length").has_value());
  const size_t json_size = std::stoul(*reply.Header("Inference-Header-Content-Length"));
  const json body = json::parse(reply.body.substr(0, json_size));
  ASSERT_EQ(body["outputs"].size(), 2u);
  const size_t probability_bytes = body["outputs"][0]["parameters"]["binary_data_size"];
  const size_t class_bytes = body["outputs"][1]["parameters"]["binary_data_size"];
  ASSERT_EQ(reply.body.size(), json_size + probability_bytes + class_bytes);
  EXPECT_EQ(reply.body.substr(json_size, probability_bytes),
            FloatBytes(expected.probabilities().values().data(),
                       expected.probabilities().values_size()));
  std::vector<int32_t> classes(class_bytes / sizeof(int32_t));
  std::memcpy(classes.data(), reply.body.data() + json_size + probability_bytes, class_bytes);
  EXPECT_THAT(classes, ::testing::ElementsAreArray(expected.predicted_classes()));
}

TEST_F(BnserveServerHttpTest, EveryErrorHasItsStatusAndTheServerServesOn) {
  const v1::Tensor rows = SyntheticData(2, kFeatures, kClasses, 1).features();
  auto error = [&](const std::string& path, const std::string& body,
                   std::vector<std::string> headers = {}) {
    HttpReply reply = Call("POST", path, body, std::move(headers));
    const json parsed = Json(reply);
    EXPECT_TRUE(parsed.is_object() && parsed["error"].is_string()) << reply.body;
    return std::make_pair(reply.status, parsed.is_object() ? parsed.value("error", "") : "");
  };
  auto [bad_json, bad_json_message] = error("/v2/models/small/infer", "{\"inputs\": [");
  EXPECT_EQ(bad_json, 400);
  EXPECT_THAT(bad_json_message, HasSubstr("not valid JSON"));
  EXPECT_EQ(error("/v2/models/nope/infer", JsonInfer(rows, false)).first, 404);
  EXPECT_EQ(error("/v2/models/small/versions/4/infer", JsonInfer(rows, false)).first, 404);

  json wrong_type = json::parse(JsonInfer(rows, false));
  wrong_type["inputs"][0]["datatype"] = "INT32";
  wrong_type["inputs"][0]["data"] = std::vector<int>(2 * kFeatures, 1);
  EXPECT_EQ(error("/v2/models/small/infer", wrong_type.dump()).first, 400);
  json wrong_width = json::parse(JsonInfer(rows, false));
  wrong_width["inputs"][0]["shape"] = {3, 8};
  EXPECT_EQ(error("/v2/models/small/infer", wrong_width.dump()).first, 400);
  json bad_mode = json::parse(JsonInfer(rows, false));
  bad_mode["parameters"] = {{"bn_mode", "training"}};
  EXPECT_EQ(error("/v2/models/small/infer", bad_mode.dump()).first, 400);

  // More rows than --max_batch (64): ResourceExhausted, 429.
  const v1::Tensor many = SyntheticData(65, kFeatures, kClasses, 2).features();
  EXPECT_EQ(error("/v2/models/small/infer", JsonInfer(many, false)).first, 429);
  // A body above --max_message_mb (1 MiB): 413.
  EXPECT_EQ(error("/v2/models/small/infer", std::string((1 << 20) + 1, ' ')).first, 413);
  // A NaN can only come as binary data; Predict refuses it as InvalidArgument.
  const float nan_row[kFeatures] = {std::nanf("")};
  const std::string header = R"({"inputs":[{"name":"input","shape":[1,12],"datatype":"FP32",)"
                             R"("parameters":{"binary_data_size":48}}]})";
  EXPECT_EQ(error("/v2/models/small/infer", header + FloatBytes(nan_row, kFeatures),
                  {absl::StrCat("Inference-Header-Content-Length: ", header.size())})
                .first,
            400);
  EXPECT_EQ(error("/v2/models/small/infer", JsonInfer(rows, false), {"Content-Encoding: gzip"})
                .first,
            415);

  ExpectJsonAnswerEquals(Call("POST", "/v2/models/small/infer", JsonInfer(rows, false)),
                         Predict(rows));
}

TEST_F(BnserveServerHttpTest, MetricsCountTheRestTrafficExactlyAndPromtoolAcceptsThem) {
  using ::bnserve::testing::ParseExposition;
  using ::bnserve::testing::SumOf;
  const v1::Tensor rows = SyntheticData(3, kFeatures, kClasses, 4).features();
  const std::string data = FloatBytes(rows.values().data(), rows.values_size());
  const std::string header =
      json{{"inputs", json::array({{{"name", "input"},
                                    {"shape", {3, kFeatures}},
                                    {"datatype", "FP32"},
                                    {"parameters", {{"binary_data_size", data.size()}}}}})}}
          .dump();
  // 4 answered (3 JSON, 1 binary; 3 rows each), 2 refused for version 1
  // (a body that does not parse, a wrong shape), 1 for an unknown model.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Call("POST", "/v2/models/small/infer", JsonInfer(rows, i == 1)).status, 200);
  }
  ASSERT_EQ(Call("POST", "/v2/models/small/infer", header + data,
                 {absl::StrCat("Inference-Header-Content-Length: ", header.size())})
                .status,
            200);
  ASSERT_EQ(Call("POST", "/v2/models/small/infer", "{not json").status, 400);
  json wrong_width = json::parse(JsonInfer(rows, false));
  wrong_width["inputs"][0]["shape"] = {2, 18};
  ASSERT_EQ(Call("POST", "/v2/models/small/infer", wrong_width.dump()).status, 400);
  ASSERT_EQ(Call("POST", "/v2/models/nope/infer", JsonInfer(rows, false)).status, 404);

  HttpReply reply = Call("GET", "/metrics");
  ASSERT_EQ(reply.status, 200);
  EXPECT_EQ(reply.Header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  bnserve::testing::ExpectPromtoolAccepts(reply.body);
  const std::vector<bnserve::testing::MetricSample> samples = ParseExposition(reply.body);
  const std::map<std::string, std::string> small = {{"model", "small"}, {"version", "1"}};
  EXPECT_EQ(SumOf(samples, "nv_inference_request_success", small), 4);
  EXPECT_EQ(SumOf(samples, "nv_inference_count", small), 12);
  EXPECT_EQ(SumOf(samples, "nv_inference_request_failure", small), 2);
  EXPECT_EQ(SumOf(samples, "bnserve_inference_request_duration_seconds_count",
                  {{"model", "small"}, {"protocol", "v2_http"}, {"bn_mode", "inference"}}),
            4);
  EXPECT_EQ(SumOf(samples, "bnserve_inference_unresolved_requests_total",
                  {{"protocol", "v2_http"}}),
            1);
  EXPECT_EQ(SumOf(samples, "bnserve_inference_request_duration_seconds_count",
                  {{"protocol", "v2_grpc"}}),
            0);
}

TEST_F(BnserveServerHttpTest, ShutdownClosesTheHttpPort) {
  const int port = server_->http_port();
  server_->Shutdown(absl::Seconds(2));
  HttpClient client;
  HttpClientRequest request;
  request.url = absl::StrCat("http://127.0.0.1:", port, "/v2/health/live");
  EXPECT_THAT(client.Send(request), testing::StatusIs(absl::StatusCode::kUnavailable));
}

TEST(BnserveServerHttpOptionsTest, NoHttpListenMeansNoHttpPort) {
  BnserveServerOptions options;
  options.listen = "127.0.0.1:0";
  options.registry_path = TempPath("registry.db");
  options.data_dir = "var/data";
  ASSERT_TRUE(options.http_listen.empty());
  absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
  ASSERT_OK(server.status());
  EXPECT_EQ((*server)->http_port(), 0);
  options.http_listen = "not an address";
  options.registry_path = TempPath("other.db");
  EXPECT_THAT(BnserveServer::Start(options),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace bnserve
