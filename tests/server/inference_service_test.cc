// InferenceServiceImpl on its own: Evaluate in slices gives the numbers of
// one pass, a BATCH_STATISTICS pass over its memory limit is
// ResourceExhausted, and concurrent Evaluates are bounded (a store that
// blocks the model load keeps the evaluations running). Every Predict is
// recorded in the metrics, a failure under the version it names. Inspect
// answers per hidden layer without changing the stored network, maps its
// bad requests to their codes, and shares the evaluations' concurrency slots.
#include "server/inference_service.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bnserve/v1/inference_service.grpc.pb.h"
#include "core/evaluation.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "server/data_resolver.h"
#include "server/model_catalog.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "server/server_metrics.h"
#include "tests/server/forwarding_model_store.h"
#include "tests/server/metrics_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::ForwardingModelStore;
using ::bnserve::testing::StatusIs;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

NetworkConfig SmallConfig() {
  NetworkConfig config;
  config.input_size = 12;
  config.hidden_sizes = {16, 16};
  config.output_size = 3;
  return config;
}

// A store that forwards to SQLite, except that GetVersion with tensors waits
// while blocking is on (and counts the waiting callers).
class BlockingStore : public ForwardingModelStore {
 public:
  explicit BlockingStore(std::unique_ptr<SqliteModelStore> store)
      : ForwardingModelStore(store.get()), sqlite_(std::move(store)) {}

  void Block() {
    std::lock_guard<std::mutex> lock(mu_);
    blocking_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    blocking_ = false;
    cv_.notify_all();
  }
  void WaitForWaiters(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_ >= n; });
  }

  absl::StatusOr<v1::ModelVersion> GetVersion(const std::string& model_name, int version,
                                              bool include_tensors) override {
    if (include_tensors) {
      std::unique_lock<std::mutex> lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !blocking_; });
      --waiting_;
    }
    return ForwardingModelStore::GetVersion(model_name, version, include_tensors);
  }

 private:
  const std::unique_ptr<SqliteModelStore> sqlite_;  // the wrapped store
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocking_ = false;
  int waiting_ = 0;
};

class InferenceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<SqliteModelStore> sqlite,
                         SqliteModelStore::Open(TempPath("inference.db")));
    store_ = std::make_unique<BlockingStore>(std::move(sqlite));
    ASSERT_OK_AND_ASSIGN(network_, Network<float>::Create(SmallConfig(), 3));
    v1::ModelVersion version;
    version.set_model_name("m");
    *version.mutable_network() = NetworkConfigToProto(SmallConfig());
    TensorsToProto(network_->ExportTensors(), version.mutable_tensors());
    ASSERT_OK(store_->AddVersion(version, nullptr).status());
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
    data_ = std::make_unique<DataResolver>("var/data");
  }

  v1::EvaluateRequest Request(int rows, v1::BnMode mode) {
    v1::EvaluateRequest request;
    request.mutable_model()->set_name("m");
    request.set_bn_mode(mode);
    *request.mutable_data()->mutable_inline_data() = SyntheticData(rows, 12, 3, 11);
    return request;
  }

  std::unique_ptr<BlockingStore> store_;
  std::optional<Network<float>> network_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::unique_ptr<DataResolver> data_;
};

TEST_F(InferenceServiceTest, SlicedEvaluationEqualsOnePassOverAllRows) {
  InferenceServiceOptions options;
  options.evaluation_slice_rows = 7;  // 50 rows: seven slices and one of 1 row
  InferenceServiceImpl service(catalog_.get(), data_.get(), options);
  const v1::EvaluateRequest request = Request(50, v1::INFERENCE);
  v1::EvaluateResponse response;
  ASSERT_OK(service.DoEvaluate(request, &response));

  // The same numbers from one core forward pass over every row.
  ASSERT_OK_AND_ASSIGN(Dataset data, DataResolver::FromInline(request.data().inline_data(), 3));
  ASSERT_OK_AND_ASSIGN(Matrix probabilities,
                       network_->PredictProbabilities(data.features, BnMode::kInference));
  std::vector<int64_t> confusion(9, 0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (Eigen::Index r = 0; r < probabilities.rows(); ++r) {
    Eigen::Index predicted = 0;
    probabilities.row(r).maxCoeff(&predicted);
    loss_sum -= std::log(static_cast<double>(probabilities(r, data.labels(r))) + 1e-7);
    ++confusion[static_cast<size_t>(data.labels(r)) * 3 + predicted];
    if (predicted == data.labels(r)) ++correct;
  }
  EXPECT_EQ(response.num_examples(), 50);
  EXPECT_EQ(response.loss(), loss_sum / 50);
  EXPECT_EQ(response.accuracy(), correct / 50.0);
  EXPECT_THAT(response.confusion_matrix(), ::testing::ElementsAreArray(confusion));
}

TEST_F(InferenceServiceTest, BatchStatisticsOverTheMemoryLimitIsResourceExhausted) {
  InferenceServiceOptions options;
  options.evaluation_slice_rows = 8;
  options.max_evaluation_bytes = EstimateEvaluationBytes(SmallConfig(), 10);
  InferenceServiceImpl service(catalog_.get(), data_.get(), options);
  v1::EvaluateResponse response;
  // One batch of 50 rows holds all of them at once: over the limit.
  const absl::Status status = service.DoEvaluate(Request(50, v1::BATCH_STATISTICS), &response);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), HasSubstr("BATCH_STATISTICS"));
  // Within the limit, and INFERENCE in slices of 8 rows, are fine.
  EXPECT_OK(service.DoEvaluate(Request(10, v1::BATCH_STATISTICS), &response));
  EXPECT_OK(service.DoEvaluate(Request(50, v1::INFERENCE), &response));
  EXPECT_EQ(response.num_examples(), 50);
}

// The case: an Evaluate of a model with many classes answered with a
// classes x classes matrix that could not be sent (and built it first).
TEST_F(InferenceServiceTest, AnAnswerBeyondTheMessageLimitIsRefusedBeforeEvaluating) {
  NetworkConfig config;
  config.input_size = 12;
  config.hidden_sizes = {4};
  config.output_size = 1024;
  ASSERT_OK_AND_ASSIGN(Network<float> wide, Network<float>::Create(config, 1));
  v1::ModelVersion version;
  version.set_model_name("classes");
  *version.mutable_network() = NetworkConfigToProto(config);
  TensorsToProto(wide.ExportTensors(), version.mutable_tensors());
  ASSERT_OK(store_->AddVersion(version, nullptr).status());
  InferenceServiceOptions options;
  options.max_response_bytes = int64_t{1} << 20;  // 1024 x 1024 counts of 1 byte: over
  InferenceServiceImpl service(catalog_.get(), data_.get(), options);
  v1::EvaluateRequest request = Request(20, v1::INFERENCE);
  request.mutable_model()->set_name("classes");
  v1::EvaluateResponse response;
  const absl::Status status = service.DoEvaluate(request, &response);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), HasSubstr("message limit of 1 MiB"));
  options.max_response_bytes = int64_t{2} << 20;
  InferenceServiceImpl roomy(catalog_.get(), data_.get(), options);
  ASSERT_OK(roomy.DoEvaluate(request, &response));
  EXPECT_EQ(response.confusion_matrix_size(), 1024 * 1024);
}

TEST_F(InferenceServiceTest, ConcurrentEvaluationsAreBoundedAndFreedWhenDone) {
  InferenceServiceOptions options;
  options.max_concurrent_evaluations = 2;
  auto service = std::make_unique<InferenceServiceImpl>(catalog_.get(), data_.get(), options);
  grpc::ServerBuilder builder;
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::unique_ptr<v1::InferenceService::Stub> stub =
      v1::InferenceService::NewStub(server->InProcessChannel(grpc::ChannelArguments()));

  // Two evaluations wait inside the model load.
  store_->Block();
  const v1::EvaluateRequest request = Request(20, v1::INFERENCE);
  grpc::ClientContext contexts[2];
  v1::EvaluateResponse responses[2];
  std::mutex mu;
  std::condition_variable cv;
  std::vector<grpc::Status> done;
  for (int i = 0; i < 2; ++i) {
    stub->async()->Evaluate(&contexts[i], &request, &responses[i], [&](grpc::Status status) {
      std::lock_guard<std::mutex> lock(mu);
      done.push_back(status);
      cv.notify_all();
    });
  }
  store_->WaitForWaiters(2);

  // A third is turned away at once (without a limit it would wait for the
  // blocked load: the deadline ends it).
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::EvaluateResponse response;
    const grpc::Status status = stub->Evaluate(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("too many concurrent evaluations"));
  }

  store_->Release();
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done.size() == 2; });
  }
  for (const grpc::Status& status : done) EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(responses[0].num_examples(), 20);

  // The slots are free again.
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    v1::EvaluateResponse response;
    const grpc::Status status = stub->Evaluate(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  server->Shutdown();
  service.reset();  // waits for any evaluation thread still releasing its slot
}

// DoPredict records each request once: successes with their rows and
// BatchNorm mode, failures under the version the request resolves to (the
// latest, an explicit number), and requests naming no version as unresolved.
TEST_F(InferenceServiceTest, EveryPredictIsRecordedOnceUnderTheVersionItNames) {
  ServerMetrics metrics;
  InferenceServiceImpl service(catalog_.get(), data_.get(), InferenceServiceOptions(), &metrics);
  auto predict = [&](int rows, int features, v1::BnMode mode, int version,
                     const std::string& name = "m") {
    v1::PredictRequest request;
    request.mutable_model()->set_name(name);
    if (version > 0) request.mutable_model()->set_version(version);
    request.set_bn_mode(mode);
    *request.mutable_inputs() = SyntheticData(rows, features, 3, 5).features();
    v1::PredictResponse response;
    return service.DoPredict(request, &response);
  };
  ASSERT_OK(predict(4, 12, v1::INFERENCE, 0));
  ASSERT_OK(predict(6, 12, v1::BATCH_STATISTICS, 1));
  EXPECT_THAT(predict(4, 11, v1::INFERENCE, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(predict(1, 12, v1::BATCH_STATISTICS, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(predict(4, 12, v1::INFERENCE, 2), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(predict(4, 12, v1::INFERENCE, 0, "other"), StatusIs(absl::StatusCode::kNotFound));

  const std::vector<testing::MetricSample> samples =
      testing::ParseExposition(metrics.TextExposition());
  const std::map<std::string, std::string> m1 = {{"model", "m"}, {"version", "1"}};
  EXPECT_EQ(testing::SumOf(samples, "nv_inference_request_success", m1), 2);
  EXPECT_EQ(testing::SumOf(samples, "nv_inference_count", m1), 10);
  EXPECT_EQ(testing::SumOf(samples, "nv_inference_exec_count", m1), 2);
  EXPECT_EQ(testing::SumOf(samples, "nv_inference_request_failure",
                           {{"model", "m"}, {"version", "1"}, {"reason", "OTHER"}}),
            2);
  EXPECT_EQ(testing::SumOf(samples, "nv_inference_request_failure"), 2);
  EXPECT_EQ(testing::SumOf(samples, "bnserve_inference_unresolved_requests_total",
                           {{"protocol", "v1_grpc"}}),
            2);  // version 2 and model "other" do not exist
  for (const char* mode : {"inference", "batch_statistics"}) {
    EXPECT_EQ(testing::SumOf(samples, "bnserve_inference_request_duration_seconds_count",
                             {{"model", "m"}, {"version", "1"}, {"protocol", "v1_grpc"},
                              {"bn_mode", mode}}),
              1)
        << mode;
  }
}

v1::InspectRequest InspectModel(const std::string& name, v1::BnMode mode) {
  v1::InspectRequest request;
  request.mutable_model()->set_name(name);
  request.set_bn_mode(mode);
  request.set_random_normal_rows(50);
  request.set_seed(4);
  return request;
}

TEST_F(InferenceServiceTest, InspectAnswersPerHiddenLayerAndLeavesTheStoredNetworkAlone) {
  InferenceServiceImpl service(catalog_.get(), data_.get(), InferenceServiceOptions());
  v1::InspectRequest request = InspectModel("m", v1::BATCH_STATISTICS);
  request.set_bins(8);
  v1::InspectResponse response;
  ASSERT_OK(service.DoInspect(request, &response));
  EXPECT_EQ(response.model_name(), "m");
  EXPECT_EQ(response.model_version(), 1);
  EXPECT_EQ(response.num_examples(), 50);
  EXPECT_EQ(response.bn_mode(), v1::BATCH_STATISTICS);
  EXPECT_EQ(response.network().input_size(), 12);
  const std::map<std::string, Matrix> stored = network_->ExportTensors();
  ASSERT_EQ(response.layers_size(), 2);
  for (const v1::LayerInspection& layer : response.layers()) {
    SCOPED_TRACE(layer.layer());
    const std::string k = std::to_string(layer.layer());
    EXPECT_EQ(layer.affine_output().counts_size(), 8);
    EXPECT_EQ(layer.affine_output().count(), 50 * 16);
    ASSERT_TRUE(layer.has_batchnorm_output());
    EXPECT_NEAR(layer.batchnorm_output().mean(), 0.0, 1e-4);  // batch statistics
    EXPECT_NEAR(layer.batchnorm_output().std(), 1.0, 1e-2);  // eps and quiet units
    EXPECT_EQ(layer.activation_output().count(), 50 * 16);
    EXPECT_EQ(layer.activation_output().min(), 0.0);  // relu
    const Matrix& running_var = stored.at("running_var" + k);
    EXPECT_THAT(layer.running_var(),
                ::testing::ElementsAreArray(running_var.data(),
                                            running_var.data() + running_var.size()));
    EXPECT_EQ(layer.gamma_size(), 16);
    EXPECT_EQ(layer.beta_size(), 16);
    EXPECT_EQ(layer.running_mean_size(), 16);
  }
  // The batch statistics were never stored in the served network.
  ASSERT_OK_AND_ASSIGN(LoadedModel loaded, catalog_->Load(request.model()));
  const std::map<std::string, Matrix> after = loaded.network->ExportTensors();
  for (const auto& [name, tensor] : stored) EXPECT_TRUE(tensor == after.at(name)) << name;
}

TEST_F(InferenceServiceTest, InspectOfAnUntrainedNetworkOnLabelledDataIgnoresTheLabels) {
  InferenceServiceImpl service(catalog_.get(), data_.get(), InferenceServiceOptions());
  v1::InspectRequest request;
  v1::NetworkConfig* network = request.mutable_untrained()->mutable_network();
  network->set_input_size(12);
  network->add_hidden_sizes(7);
  network->set_use_batchnorm(false);
  network->set_output_size(2);  // the data's labels go up to 9
  request.mutable_untrained()->set_seed(9);
  *request.mutable_data()->mutable_inline_data() = SyntheticData(30, 12, 10, 2);
  request.set_range_min(-1);
  request.set_range_max(1);
  v1::InspectResponse response;
  ASSERT_OK(service.DoInspect(request, &response));
  EXPECT_EQ(response.model_name(), "");
  EXPECT_EQ(response.model_version(), 0);
  EXPECT_EQ(response.num_examples(), 30);
  EXPECT_EQ(response.bn_mode(), v1::INFERENCE);
  EXPECT_EQ(response.network().activation(), v1::RELU);  // defaults filled in
  ASSERT_EQ(response.layers_size(), 1);
  const v1::LayerInspection& layer = response.layers(0);
  EXPECT_FALSE(layer.has_batchnorm_output());
  EXPECT_EQ(layer.gamma_size(), 0);
  EXPECT_EQ(layer.affine_output().counts_size(), 30);
  EXPECT_EQ(layer.affine_output().min(), -1.0);
  int64_t total = layer.affine_output().below() + layer.affine_output().above();
  for (int64_t c : layer.affine_output().counts()) total += c;
  EXPECT_EQ(total, 30 * 7);
  // The same seed gives the same network, and so the same answer.
  v1::InspectResponse again;
  ASSERT_OK(service.DoInspect(request, &again));
  EXPECT_EQ(again.SerializeAsString(), response.SerializeAsString());
}

TEST_F(InferenceServiceTest, InspectMapsBadRequestsToTheirCodes) {
  InferenceServiceOptions options;
  options.max_batch = 100;
  InferenceServiceImpl service(catalog_.get(), data_.get(), options);
  const auto code = [&](const v1::InspectRequest& request) {
    v1::InspectResponse response;
    return service.DoInspect(request, &response).code();
  };
  using absl::StatusCode;
  const v1::InspectRequest good = InspectModel("m", v1::INFERENCE);
  EXPECT_EQ(code(good), StatusCode::kOk);

  v1::InspectRequest r = good;
  r.clear_model();
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "no network";
  r = good;
  r.clear_random_normal_rows();
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "no input";
  for (int bins : {-1, 1001}) {
    r = good;
    r.set_bins(bins);
    EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "bins " << bins;
  }
  r = good;
  r.set_bins(1000);
  EXPECT_EQ(code(r), StatusCode::kOk);
  r = good;
  r.set_range_min(0);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "range_min alone";
  r.set_range_max(0);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "empty range";
  r = good;
  r.set_random_normal_rows(-3);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "negative rows";
  r = good;
  r.set_random_normal_rows(1);
  r.set_bn_mode(v1::BATCH_STATISTICS);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "BATCH_STATISTICS of one row";
  r = good;
  *r.mutable_inputs() = SyntheticData(4, 11, 3, 1).features();
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "11 features for 12";
  r.mutable_inputs()->set_values(0, NAN);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "NaN";
  r.mutable_inputs()->add_values(1);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "shape and values differ";
  r = good;
  r.mutable_data()->mutable_builtin()->set_name("no-such-data");
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "unknown built-in data";
  r = good;
  r.mutable_untrained()->mutable_network()->add_hidden_sizes(10);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "untrained without input_size";
  r.mutable_untrained()->mutable_network()->set_input_size(12);
  EXPECT_EQ(code(r), StatusCode::kOk);
  r.mutable_untrained()->mutable_network()->set_dropout_ratio(1.5);
  EXPECT_EQ(code(r), StatusCode::kInvalidArgument) << "bad config";

  r = InspectModel("no-such-model", v1::INFERENCE);
  EXPECT_EQ(code(r), StatusCode::kNotFound);
  r = good;
  r.mutable_model()->set_version(2);
  EXPECT_EQ(code(r), StatusCode::kNotFound);

  r = good;
  r.set_random_normal_rows(101);
  EXPECT_EQ(code(r), StatusCode::kResourceExhausted) << "over max_batch";
  r = good;
  *r.mutable_inputs() = SyntheticData(101, 12, 3, 1).features();
  EXPECT_EQ(code(r), StatusCode::kResourceExhausted) << "inline rows over max_batch";
}

TEST_F(InferenceServiceTest, InspectOverTheMemoryOrMessageLimitIsRefused) {
  InferenceServiceOptions options;
  // 50 rows of the 12-16-16-3 network fit, 51 do not (plus the generated rows).
  options.max_evaluation_bytes =
      EstimateForwardBytes(SmallConfig(), 50) + 50 * 12 * int64_t{sizeof(float)};
  InferenceServiceImpl service(catalog_.get(), data_.get(), options);
  v1::InspectRequest request = InspectModel("m", v1::INFERENCE);
  v1::InspectResponse response;
  ASSERT_OK(service.DoInspect(request, &response));
  request.set_random_normal_rows(51);
  const absl::Status status = service.DoInspect(request, &response);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), HasSubstr("51 rows"));
  request.clear_random_normal_rows();
  *request.mutable_data()->mutable_inline_data() = SyntheticData(60, 12, 3, 1);
  EXPECT_THAT(service.DoInspect(request, &response),
              StatusIs(absl::StatusCode::kResourceExhausted));

  InferenceServiceOptions small_messages;
  small_messages.max_response_bytes = 4096;  // two layers of 1000 bins do not fit
  InferenceServiceImpl terse(catalog_.get(), data_.get(), small_messages);
  v1::InspectRequest many_bins = InspectModel("m", v1::INFERENCE);
  many_bins.set_bins(1000);
  EXPECT_THAT(terse.DoInspect(many_bins, &response),
              StatusIs(absl::StatusCode::kResourceExhausted));
  many_bins.set_bins(10);
  EXPECT_OK(terse.DoInspect(many_bins, &response));
  EXPECT_LE(static_cast<int64_t>(response.ByteSizeLong()), 4096);
}

TEST_F(InferenceServiceTest, InspectThroughGrpcSharesTheEvaluationSlots) {
  InferenceServiceOptions options;
  options.max_concurrent_evaluations = 1;
  auto service = std::make_unique<InferenceServiceImpl>(catalog_.get(), data_.get(), options);
  grpc::ServerBuilder builder;
  builder.RegisterService(service.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::unique_ptr<v1::InferenceService::Stub> stub =
      v1::InferenceService::NewStub(server->InProcessChannel(grpc::ChannelArguments()));

  // An evaluation waits inside the model load and holds the one slot.
  store_->Block();
  const v1::EvaluateRequest evaluate = Request(20, v1::INFERENCE);
  grpc::ClientContext evaluate_context;
  v1::EvaluateResponse evaluate_response;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> evaluated;
  stub->async()->Evaluate(&evaluate_context, &evaluate, &evaluate_response,
                          [&](grpc::Status status) {
                            std::lock_guard<std::mutex> lock(mu);
                            evaluated = status;
                            cv.notify_all();
                          });
  store_->WaitForWaiters(1);
  const v1::InspectRequest request = InspectModel("m", v1::INFERENCE);
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::InspectResponse response;
    const grpc::Status status = stub->Inspect(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  store_->Release();
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return evaluated.has_value(); });
  }
  EXPECT_TRUE(evaluated->ok()) << evaluated->error_message();

  grpc::ClientContext context;
  v1::InspectResponse response;
  const grpc::Status status = stub->Inspect(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.layers_size(), 2);
  grpc::ClientContext bad_context;
  v1::InspectRequest bad = request;
  bad.set_bins(5000);
  EXPECT_EQ(stub->Inspect(&bad_context, bad, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  server->Shutdown();
  service.reset();
}

}  // namespace
}  // namespace bnserve
