// OpenInference without a transport: ModelInfer gives exactly the numbers of
// the Predictor behind bnserve.v1 Predict, every bad request gets Predict's
// status code, readiness follows the catalog's loaded versions, and every
// ModelInfer is recorded in the metrics once, under its protocol.
#include "server/open_inference.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/predictor.h"
#include "server/proto_convert.h"
#include "server/server_metrics.h"
#include "server/sqlite_model_store.h"
#include "tests/server/metrics_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOkAndHolds;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kFeatures = 12;
constexpr int kClasses = 3;
constexpr int kMaxBatch = 64;

v1::ModelVersion SeedVersion(const std::string& name, uint64_t seed) {
  NetworkConfig config;
  config.input_size = kFeatures;
  config.hidden_sizes = {16, 8};
  config.output_size = kClasses;
  config.use_batchnorm = true;
  absl::StatusOr<Network<float>> network = Network<float>::Create(config, seed);
  EXPECT_TRUE(network.ok());
  v1::ModelVersion version;
  version.set_model_name(name);
  *version.mutable_network() = NetworkConfigToProto(config);
  TensorsToProto(network->ExportTensors(), version.mutable_tensors());
  return version;
}

inference::ModelInferRequest Fp32Request(const std::string& model, const Matrix& rows) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  request.set_id("req-7");
  auto* input = request.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(rows.rows());
  input->add_shape(rows.cols());
  input->mutable_contents()->mutable_fp32_contents()->Add(rows.data(),
                                                          rows.data() + rows.size());
  return request;
}

inference::ModelInferRequest RawRequest(const std::string& model, const Matrix& rows) {
  inference::ModelInferRequest request = Fp32Request(model, rows);
  request.mutable_inputs(0)->clear_contents();
  request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(rows.data()),
                                           sizeof(float) * rows.size());
  return request;
}

template <typename T>
std::vector<T> FromRaw(const std::string& bytes) {
  std::vector<T> values(bytes.size() / sizeof(T));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

v1::ModelRef Ref(const std::string& name, int version = 0) {
  v1::ModelRef ref;
  ref.set_name(name);
  if (version > 0) ref.set_version(version);
  return ref;
}

class OpenInferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("v2.db")));
    catalog_ = std::make_unique<ModelCatalog>(store_.get(), /*cache_capacity=*/4);
    predictor_ = std::make_unique<Predictor>(catalog_.get(), kMaxBatch);
    ASSERT_OK(catalog_->Register(SeedVersion("digits", 1), nullptr).status());
    ASSERT_OK(catalog_->Register(SeedVersion("digits", 2), nullptr).status());
    ASSERT_OK(catalog_->SetAlias("digits", "production", 1).status());
    OpenInferenceOptions options;
    options.default_model = "digits";
    v2_ = std::make_unique<OpenInference>(catalog_.get(), predictor_.get(), options);
  }

  // What bnserve.v1 Predict computes for these rows.
  Prediction Expected(const v1::ModelRef& ref, const Matrix& rows, BnMode mode) {
    absl::StatusOr<Prediction> prediction = predictor_->Predict(ref, rows, mode);
    EXPECT_TRUE(prediction.ok()) << prediction.status();
    return *std::move(prediction);
  }

  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<Predictor> predictor_;
  std::unique_ptr<OpenInference> v2_;
};

TEST_F(OpenInferenceTest, ModelRefFromV2ReadsNumbersAliasesAndLatest) {
  ASSERT_OK_AND_ASSIGN(v1::ModelRef latest, OpenInference::ModelRefFromV2("m", ""));
  EXPECT_EQ(latest.selector_case(), v1::ModelRef::SELECTOR_NOT_SET);
  ASSERT_OK_AND_ASSIGN(v1::ModelRef number, OpenInference::ModelRefFromV2("m", "12"));
  EXPECT_EQ(number.version(), 12);
  ASSERT_OK_AND_ASSIGN(v1::ModelRef alias, OpenInference::ModelRefFromV2("m", "production"));
  EXPECT_EQ(alias.alias(), "production");
  for (const char* bad : {"0", "-1", "1x", "99999999999", "x y"}) {
    EXPECT_THAT(OpenInference::ModelRefFromV2("m", bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(OpenInference::ModelRefFromV2("", "1"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(OpenInferenceTest, ModelInferGivesPredictsNumbersBitForBit) {
  const Matrix rows = testing::RandomInput(9, kFeatures, 3);
  for (BnMode mode : {BnMode::kInference, BnMode::kBatchStatistics}) {
    inference::ModelInferRequest request = Fp32Request("digits", rows);
    if (mode == BnMode::kBatchStatistics) {
      (*request.mutable_parameters())["bn_mode"].set_string_param("batch_statistics");
    }
    inference::ModelInferResponse response;
    ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
    const Prediction expected = Expected(Ref("digits"), rows, mode);
    EXPECT_EQ(response.model_name(), "digits");
    EXPECT_EQ(response.model_version(), "2");
    EXPECT_EQ(response.id(), "req-7");
    ASSERT_EQ(response.outputs_size(), 2);
    const auto& probabilities = response.outputs(0);
    EXPECT_EQ(probabilities.name(), "probabilities");
    EXPECT_EQ(probabilities.datatype(), "FP32");
    EXPECT_THAT(probabilities.shape(), ElementsAre(9, kClasses));
    ASSERT_EQ(probabilities.contents().fp32_contents_size(), 9 * kClasses);
    EXPECT_EQ(std::memcmp(probabilities.contents().fp32_contents().data(),
                          expected.probabilities.data(), sizeof(float) * 9 * kClasses),
              0);
    const auto& classes = response.outputs(1);
    EXPECT_EQ(classes.name(), "predicted_class");
    EXPECT_EQ(classes.datatype(), "INT32");
    EXPECT_THAT(classes.shape(), ElementsAre(9));
    EXPECT_EQ(std::vector<int32_t>(classes.contents().int_contents().begin(),
                                   classes.contents().int_contents().end()),
              expected.predicted_classes);
    EXPECT_EQ(response.raw_output_contents_size(), 0);
  }
}

TEST_F(OpenInferenceTest, RawInputGetsRawOutputWithTheSameBits) {
  const Matrix rows = testing::RandomInput(5, kFeatures, 4);
  inference::ModelInferRequest request = RawRequest("digits", rows);
  request.set_model_version("production");
  inference::ModelInferResponse response;
  ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
  const Prediction expected = Expected(Ref("digits", 1), rows, BnMode::kInference);
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_EQ(response.outputs_size(), 2);
  ASSERT_EQ(response.raw_output_contents_size(), 2);
  EXPECT_FALSE(response.outputs(0).has_contents());
  const std::vector<float> probabilities = FromRaw<float>(response.raw_output_contents(0));
  ASSERT_EQ(probabilities.size(), 5u * kClasses);
  EXPECT_EQ(std::memcmp(probabilities.data(), expected.probabilities.data(),
                        sizeof(float) * probabilities.size()),
            0);
  EXPECT_EQ(FromRaw<int32_t>(response.raw_output_contents(1)), expected.predicted_classes);
}

TEST_F(OpenInferenceTest, Fp64InputIsConvertedToFloat) {
  const Matrix rows = testing::RandomInput(4, kFeatures, 5);
  inference::ModelInferRequest request = Fp32Request("digits", rows);
  auto* input = request.mutable_inputs(0);
  input->set_datatype("FP64");
  input->mutable_contents()->clear_fp32_contents();
  for (Eigen::Index i = 0; i < rows.size(); ++i) {
    input->mutable_contents()->add_fp64_contents(static_cast<double>(rows.data()[i]));
  }
  inference::ModelInferResponse response;
  ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
  const Prediction expected = Expected(Ref("digits"), rows, BnMode::kInference);
  EXPECT_EQ(std::memcmp(response.outputs(0).contents().fp32_contents().data(),
                        expected.probabilities.data(), sizeof(float) * 4 * kClasses),
            0);

  // The same through raw contents.
  std::vector<double> doubles(rows.data(), rows.data() + rows.size());
  request.mutable_inputs(0)->clear_contents();
  request.add_raw_input_contents()->assign(reinterpret_cast<const char*>(doubles.data()),
                                           sizeof(double) * doubles.size());
  response.Clear();
  ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
  EXPECT_EQ(FromRaw<int32_t>(response.raw_output_contents(1)), expected.predicted_classes);
}

TEST_F(OpenInferenceTest, TheOutputsListSelectsAndOrdersOutputs) {
  const Matrix rows = testing::RandomInput(3, kFeatures, 6);
  inference::ModelInferRequest request = Fp32Request("digits", rows);
  request.add_outputs()->set_name("predicted_class");
  inference::ModelInferResponse response;
  ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "predicted_class");

  request.add_outputs()->set_name("probabilities");
  response.Clear();
  ASSERT_OK(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc));
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(1).name(), "probabilities");

  request.add_outputs()->set_name("logits");
  EXPECT_THAT(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc),
              StatusIs(absl::StatusCode::kInvalidArgument));
  request.mutable_outputs()->RemoveLast();
  request.add_outputs()->set_name("probabilities");
  EXPECT_THAT(v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(OpenInferenceTest, BadRequestsGetPredictsStatusCodes) {
  const Matrix rows = testing::RandomInput(4, kFeatures, 7);
  inference::ModelInferResponse response;
  const auto expect_code = [&](const inference::ModelInferRequest& request,
                               absl::StatusCode code, const std::string& message) {
    const absl::Status status = v2_->ModelInfer(request, &response, InferenceProtocol::kV2Grpc);
    EXPECT_THAT(status, StatusIs(code)) << message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message));
  };
  inference::ModelInferRequest request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->set_datatype("INT32");
  expect_code(request, absl::StatusCode::kInvalidArgument, "datatype \"INT32\"");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->set_shape(0, 5);
  expect_code(request, absl::StatusCode::kInvalidArgument, "needs 60");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->clear_shape();
  request.mutable_inputs(0)->add_shape(rows.size());
  expect_code(request, absl::StatusCode::kInvalidArgument, "shape [N, features]");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->set_shape(1, std::numeric_limits<int64_t>::max());
  expect_code(request, absl::StatusCode::kInvalidArgument, "features per row");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->set_shape(0, -4);
  expect_code(request, absl::StatusCode::kInvalidArgument, "N, features > 0");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->set_name("x");
  expect_code(request, absl::StatusCode::kInvalidArgument, "exactly one input");

  request = Fp32Request("digits", rows);
  *request.add_inputs() = request.inputs(0);
  expect_code(request, absl::StatusCode::kInvalidArgument, "exactly one input");

  request = Fp32Request("digits", rows);
  request.mutable_inputs(0)->mutable_contents()->set_fp32_contents(3, NAN);
  expect_code(request, absl::StatusCode::kInvalidArgument, "must be finite");

  const Matrix wrong_width = testing::RandomInput(4, kFeatures + 1, 7);
  expect_code(Fp32Request("digits", wrong_width), absl::StatusCode::kInvalidArgument, "");

  request = RawRequest("digits", rows);
  request.mutable_raw_input_contents(0)->pop_back();
  expect_code(request, absl::StatusCode::kInvalidArgument, "bytes");

  request = RawRequest("digits", rows);
  request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(1);
  expect_code(request, absl::StatusCode::kInvalidArgument, "both");

  request = Fp32Request("digits", rows);
  (*request.mutable_parameters())["bn_mode"].set_string_param("train");
  expect_code(request, absl::StatusCode::kInvalidArgument, "bn_mode");

  const Matrix one_row = testing::RandomInput(1, kFeatures, 8);
  request = Fp32Request("digits", one_row);
  (*request.mutable_parameters())["bn_mode"].set_string_param("batch_statistics");
  expect_code(request, absl::StatusCode::kInvalidArgument, "");

  const Matrix too_many = testing::RandomInput(kMaxBatch + 1, kFeatures, 9);
  expect_code(Fp32Request("digits", too_many), absl::StatusCode::kResourceExhausted, "maximum");

  expect_code(Fp32Request("nosuch", rows), absl::StatusCode::kNotFound, "nosuch");
  request = Fp32Request("digits", rows);
  request.set_model_version("3");
  expect_code(request, absl::StatusCode::kNotFound, "version 3");
  request.set_model_version("staging");
  expect_code(request, absl::StatusCode::kNotFound, "staging");
}

TEST_F(OpenInferenceTest, MetadataDescribesTheVersionsAndTensors) {
  inference::ModelMetadataRequest request;
  request.set_name("digits");
  inference::ModelMetadataResponse response;
  ASSERT_OK(v2_->ModelMetadata(request, &response));
  EXPECT_EQ(response.name(), "digits");
  EXPECT_THAT(response.versions(), ElementsAre("1", "2"));
  EXPECT_EQ(response.platform(), "bnserve_mlp");
  ASSERT_EQ(response.inputs_size(), 1);
  EXPECT_EQ(response.inputs(0).name(), "input");
  EXPECT_EQ(response.inputs(0).datatype(), "FP32");
  EXPECT_THAT(response.inputs(0).shape(), ElementsAre(-1, kFeatures));
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(-1, kClasses));
  EXPECT_EQ(response.outputs(1).datatype(), "INT32");
  EXPECT_THAT(response.outputs(1).shape(), ElementsAre(-1));
  EXPECT_EQ(response.properties().at("version"), "2");

  request.set_version("production");
  response.Clear();
  ASSERT_OK(v2_->ModelMetadata(request, &response));
  EXPECT_EQ(response.properties().at("version"), "1");
  EXPECT_EQ(response.properties().at("alias.production"), "true");

  request.set_name("nosuch");
  EXPECT_THAT(v2_->ModelMetadata(request, &response), StatusIs(absl::StatusCode::kNotFound));

  inference::ServerMetadataResponse server;
  v2_->ServerMetadata(&server);
  EXPECT_EQ(server.name(), "bnserve");
  EXPECT_FALSE(server.version().empty());
}

TEST_F(OpenInferenceTest, ReadinessFollowsLoadedVersions) {
  EXPECT_TRUE(v2_->ServerLive());
  // Nothing is loaded yet: asking starts a background load.
  EXPECT_THAT(v2_->ModelReady("digits", "1"), IsOkAndHolds(false));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!catalog_->IsReady("digits", 1) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_THAT(v2_->ModelReady("digits", "1"), IsOkAndHolds(true));
  EXPECT_THAT(v2_->ModelReady("digits", "production"), IsOkAndHolds(true));
  // The server waits for the default model's latest version (2).
  EXPECT_FALSE(catalog_->IsReady("digits", 2));
  EXPECT_FALSE(v2_->ServerReady());
  while (!catalog_->IsReady("digits", 2) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_TRUE(v2_->ServerReady());
  EXPECT_THAT(v2_->ModelReady("digits", ""), IsOkAndHolds(true));
  EXPECT_THAT(v2_->ModelReady("digits", "9"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(v2_->ModelReady("nosuch", ""), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(OpenInferenceTest, WithoutADefaultModelTheServerIsReadyAtOnce) {
  OpenInference plain(catalog_.get(), predictor_.get(), OpenInferenceOptions{});
  EXPECT_TRUE(plain.ServerReady());
  OpenInferenceOptions untrained;
  untrained.default_model = "not-trained-yet";
  OpenInference waiting(catalog_.get(), predictor_.get(), untrained);
  EXPECT_FALSE(waiting.ServerReady());
}

TEST_F(OpenInferenceTest, EveryModelInferIsRecordedOnceUnderItsProtocol) {
  ServerMetrics metrics;
  OpenInferenceOptions options;
  OpenInference v2(catalog_.get(), predictor_.get(), options, &metrics);
  const Matrix rows = testing::RandomInput(3, kFeatures, 5);
  inference::ModelInferResponse response;
  // Two successes over gRPC (the latest, 2, and the alias of 1), one of the
  // latest in batch-statistics mode over HTTP, received 2 ms before the call.
  ASSERT_OK(v2.ModelInfer(Fp32Request("digits", rows), &response, InferenceProtocol::kV2Grpc));
  inference::ModelInferRequest production = Fp32Request("digits", rows);
  production.set_model_version("production");
  ASSERT_OK(v2.ModelInfer(production, &response, InferenceProtocol::kV2Grpc));
  inference::ModelInferRequest batch = RawRequest("digits", rows);
  (*batch.mutable_parameters())["bn_mode"].set_string_param("batch_statistics");
  const absl::Time received = absl::Now() - absl::Milliseconds(2);
  ASSERT_OK(v2.ModelInfer(batch, &response, InferenceProtocol::kV2Http, received));
  // Failures: a bad datatype for version 2, an unknown version, and a body
  // the HTTP front end could not parse, for version 1.
  inference::ModelInferRequest int_input = Fp32Request("digits", rows);
  int_input.mutable_inputs(0)->set_datatype("INT32");
  EXPECT_THAT(v2.ModelInfer(int_input, &response, InferenceProtocol::kV2Grpc),
              StatusIs(absl::StatusCode::kInvalidArgument));
  inference::ModelInferRequest unknown = Fp32Request("digits", rows);
  unknown.set_model_version("9");
  EXPECT_THAT(v2.ModelInfer(unknown, &response, InferenceProtocol::kV2Grpc),
              StatusIs(absl::StatusCode::kNotFound));
  v2.RecordRefused("digits", "1", InferenceProtocol::kV2Http,
                   absl::InvalidArgumentError("bad JSON"), absl::Now());

  const std::vector<testing::MetricSample> samples =
      testing::ParseExposition(metrics.TextExposition());
  auto sum = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    return testing::SumOf(samples, name, labels);
  };
  EXPECT_EQ(sum("nv_inference_request_success", {{"model", "digits"}, {"version", "2"}}), 2);
  EXPECT_EQ(sum("nv_inference_request_success", {{"model", "digits"}, {"version", "1"}}), 1);
  EXPECT_EQ(sum("nv_inference_count", {{"model", "digits"}}), 9);
  EXPECT_EQ(sum("nv_inference_request_failure",
                {{"model", "digits"}, {"version", "2"}, {"reason", "OTHER"}}),
            1);
  EXPECT_EQ(sum("nv_inference_request_failure",
                {{"model", "digits"}, {"version", "1"}, {"reason", "OTHER"}}),
            1);
  EXPECT_EQ(sum("bnserve_inference_unresolved_requests_total", {{"protocol", "v2_grpc"}}), 1);
  const std::string count = "bnserve_inference_request_duration_seconds_count";
  EXPECT_EQ(sum(count, {{"protocol", "v2_grpc"}, {"bn_mode", "inference"}}), 2);
  EXPECT_EQ(sum(count, {{"protocol", "v2_http"}, {"bn_mode", "batch_statistics"}}), 1);
  // The HTTP request's latency counts from when its front end received it.
  EXPECT_GE(sum("bnserve_inference_request_duration_seconds_sum", {{"protocol", "v2_http"}}),
            0.002);
  EXPECT_EQ(testing::SumOf(samples, "bnserve_inference_request_duration_seconds_count"), 3);
}

}  // namespace
}  // namespace bnserve
