// The assembled server through real gRPC stubs (in-process channel and a
// loopback port): validation codes, inference against the core network,
// BatchNorm modes, the registry service, WatchJob streams, Predict
// running concurrently with training, and metrics that match the traffic.
#include "server/bnserve_server.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "core/batch_norm_folding.h"
#include "core/network.h"
#include "gmock/gmock.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/proto_convert.h"
#include "tests/server/grpc_test_util.h"
#include "tests/server/metrics_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::HealthCheck;
using ::bnserve::testing::SmallTrainRequest;
using ::bnserve::testing::SyntheticData;
using ::bnserve::testing::TempPath;

class BnserveServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath("server.db");
    StartServer();
  }

  // A server on path_ (kept across restarts).
  void StartServer(bool fold_batchnorm = true) {
    BnserveServerOptions options;
    options.fold_batchnorm = fold_batchnorm;
    options.listen = "127.0.0.1:0";
    options.registry_path = path_;
    options.data_dir = "var/data";
    options.max_epochs = 5000;
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = server_->InProcessChannel();
    training_ = v1::TrainingService::NewStub(channel_);
    inference_ = v1::InferenceService::NewStub(channel_);
    registry_ = v1::ModelRegistry::NewStub(channel_);
  }

  // Trains the small synthetic model to success and returns the job.
  v1::Job TrainSmall(const std::string& name, int epochs = 2) {
    grpc::ClientContext context;
    v1::Job job;
    grpc::Status status = training_->Train(&context, SmallTrainRequest(name, epochs), &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return WaitForEnd(job.job_id());
  }

  v1::Job WaitForEnd(const std::string& job_id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    v1::Job job;
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(job_id);
      EXPECT_TRUE(training_->GetJob(&context, request, &job).ok());
      if (job.state() == v1::SUCCEEDED || job.state() == v1::FAILED ||
          job.state() == v1::CANCELLED) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return job;
  }

  grpc::Status Predict(const v1::PredictRequest& request, v1::PredictResponse* response) {
    grpc::ClientContext context;
    return inference_->Predict(&context, request, response);
  }

  // The server still answers a plain request.
  void ExpectServing() {
    grpc::ClientContext context;
    v1::ListModelsResponse response;
    EXPECT_TRUE(registry_->ListModels(&context, v1::ListModelsRequest(), &response).ok());
  }

  v1::ModelVersion GetModel(const std::string& name, bool tensors) {
    grpc::ClientContext context;
    v1::GetModelRequest request;
    request.mutable_model()->set_name(name);
    request.set_include_parameters(tensors);
    v1::ModelVersion version;
    grpc::Status status = registry_->GetModel(&context, request, &version);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return version;
  }

  std::string path_;
  std::unique_ptr<BnserveServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TrainingService::Stub> training_;
  std::unique_ptr<v1::InferenceService::Stub> inference_;
  std::unique_ptr<v1::ModelRegistry::Stub> registry_;
};

// The core network rebuilt from GetModel's tensors.
Network<float> CoreNetworkOf(const v1::ModelVersion& version) {
  absl::StatusOr<Network<float>> network = NetworkFromVersion(version);
  EXPECT_TRUE(network.ok()) << network.status();
  return *std::move(network);
}

// INFERENCE answers are the folded network's (the server folds by default,
// and GetModel says so): bit for bit those of FoldBatchNorm of GetModel's
// tensors, and within 1e-5 of the stored, unfolded network's.
TEST_F(BnserveServerTest, PredictAgreesWithTheCoreNetworkOfGetModelsTensors) {
  ASSERT_EQ(TrainSmall("agree").state(), v1::SUCCEEDED);
  const v1::ModelVersion version = GetModel("agree", true);
  EXPECT_TRUE(version.served_folded());
  const Network<float> unfolded = CoreNetworkOf(version);
  ASSERT_OK_AND_ASSIGN(const Network<float> network, FoldBatchNorm(unfolded));
  v1::PredictRequest request;
  request.mutable_model()->set_name("agree");
  *request.mutable_inputs() = SyntheticData(37, 12, 3, 99).features();
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  EXPECT_EQ(response.model_name(), "agree");
  EXPECT_EQ(response.model_version(), 1);
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> inputs, MapTensor(request.inputs()));
  ASSERT_OK_AND_ASSIGN(Matrix expected, network.PredictProbabilities(inputs, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> actual, MapTensor(response.probabilities()));
  ASSERT_EQ(actual.rows(), 37);
  ASSERT_EQ(actual.cols(), 3);
  EXPECT_EQ(Matrix(actual), expected);  // same code, same inputs: identical
  ASSERT_OK_AND_ASSIGN(Matrix stored, unfolded.PredictProbabilities(inputs, BnMode::kInference));
  EXPECT_LE((Matrix(actual) - stored).cwiseAbs().maxCoeff(), 1e-5f);
  EXPECT_NE(Matrix(actual), stored) << "the folded network rounds differently from the stored";
  ASSERT_EQ(response.predicted_classes_size(), 37);
  for (int r = 0; r < 37; ++r) {
    Eigen::Index best;
    expected.row(r).maxCoeff(&best);
    EXPECT_EQ(response.predicted_classes(r), best);
    EXPECT_NEAR(actual.row(r).sum(), 1.0f, 1e-5f);
  }

  // Inference mode is batch-independent: row 5 alone gives the same answer.
  v1::PredictRequest single = request;
  single.mutable_inputs()->clear_values();
  single.mutable_inputs()->set_shape(0, 1);
  for (int c = 0; c < 12; ++c) single.mutable_inputs()->add_values(inputs(5, c));
  v1::PredictResponse single_response;
  ASSERT_TRUE(Predict(single, &single_response).ok());
  for (int c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(single_response.probabilities().values(c), actual(5, c));
  }
}

// BATCH_STATISTICS runs the stored network; with fold_batchnorm off so does
// INFERENCE, and GetModel says it is not served folded.
TEST_F(BnserveServerTest, BatchStatisticsAndFoldingOffRunTheStoredNetwork) {
  ASSERT_EQ(TrainSmall("stored").state(), v1::SUCCEEDED);
  const Network<float> network = CoreNetworkOf(GetModel("stored", true));
  v1::PredictRequest request;
  request.mutable_model()->set_name("stored");
  *request.mutable_inputs() = SyntheticData(20, 12, 3, 98).features();
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> inputs, MapTensor(request.inputs()));
  request.set_bn_mode(v1::BATCH_STATISTICS);
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  ASSERT_OK_AND_ASSIGN(Matrix expected,
                       network.PredictProbabilities(inputs, BnMode::kBatchStatistics));
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> actual, MapTensor(response.probabilities()));
  EXPECT_EQ(Matrix(actual), expected);

  server_->Shutdown();
  server_.reset();
  StartServer(/*fold_batchnorm=*/false);
  EXPECT_FALSE(GetModel("stored", false).served_folded());
  request.set_bn_mode(v1::INFERENCE);
  v1::PredictResponse unfolded;
  ASSERT_TRUE(Predict(request, &unfolded).ok());
  ASSERT_OK_AND_ASSIGN(expected, network.PredictProbabilities(inputs, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> unfolded_actual,
                       MapTensor(unfolded.probabilities()));
  EXPECT_EQ(Matrix(unfolded_actual), expected);
}

TEST_F(BnserveServerTest, BatchStatisticsNeverChangesStoredRunningStatistics) {
  ASSERT_EQ(TrainSmall("bn").state(), v1::SUCCEEDED);
  const v1::ModelVersion before = GetModel("bn", true);
  v1::PredictRequest request;
  request.mutable_model()->set_name("bn");
  *request.mutable_inputs() = SyntheticData(64, 12, 3, 5).features();
  for (float& v : *request.mutable_inputs()->mutable_values()) v = v * 3.0f + 2.0f;  // shifted
  v1::PredictResponse inference_before, batch_stats, inference_after;
  ASSERT_TRUE(Predict(request, &inference_before).ok());
  request.set_bn_mode(v1::BATCH_STATISTICS);
  ASSERT_TRUE(Predict(request, &batch_stats).ok());
  request.set_bn_mode(v1::INFERENCE);
  ASSERT_TRUE(Predict(request, &inference_after).ok());
  // The two modes really differ on shifted data...
  EXPECT_NE(inference_before.probabilities().SerializeAsString(),
            batch_stats.probabilities().SerializeAsString());
  // ...and neither the answers nor the stored tensors changed.
  EXPECT_EQ(inference_before.probabilities().SerializeAsString(),
            inference_after.probabilities().SerializeAsString());
  const v1::ModelVersion after = GetModel("bn", true);
  ASSERT_EQ(before.tensors_size(), after.tensors_size());
  for (int i = 0; i < before.tensors_size(); ++i) {
    EXPECT_EQ(before.tensors(i).SerializeAsString(), after.tensors(i).SerializeAsString())
        << before.tensors(i).name();
  }
}

// A client's 32 KiB name or job id comes back as a short error over TCP, not
// as gRPC's "metadata size exceeds limit" (or a hang).
TEST_F(BnserveServerTest, HugeNamesGetAShortErrorOverTcp) {
  auto tcp = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                 grpc::InsecureChannelCredentials());
  auto inference = v1::InferenceService::NewStub(tcp);
  auto training = v1::TrainingService::NewStub(tcp);
  auto registry = v1::ModelRegistry::NewStub(tcp);
  const std::string huge(32 << 10, 'n');
  const auto deadline = [] { return absl::ToChronoTime(absl::Now() + absl::Seconds(10)); };
  {
    v1::PredictRequest request;
    request.mutable_model()->set_name(huge);
    *request.mutable_inputs() = SyntheticData(1, 12, 3, 1).features();
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::PredictResponse response;
    const grpc::Status status = inference->Predict(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 200u);
  }
  {
    v1::SetAliasRequest request;
    request.set_model_name("m");
    request.set_alias(huge);
    request.set_version(1);
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::Model response;
    const grpc::Status status = registry->SetAlias(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_LT(status.error_message().size(), 200u);
  }
  {
    v1::GetJobRequest request;
    request.set_job_id(huge);
    grpc::ClientContext context;
    context.set_deadline(deadline());
    v1::Job response;
    const grpc::Status status = training->GetJob(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
    EXPECT_LE(status.error_message().size(), 1024u);
  }
}

TEST_F(BnserveServerTest, EveryValidationErrorHasItsCodeAndTheServerServesOn) {
  ASSERT_EQ(TrainSmall("v").state(), v1::SUCCEEDED);
  const v1::Tensor good = SyntheticData(4, 12, 3, 1).features();
  struct Case {
    const char* what;
    std::function<void(v1::PredictRequest*)> mutate;
    grpc::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"wrong feature count",
       [](v1::PredictRequest* r) { *r->mutable_inputs() = SyntheticData(4, 11, 3, 1).features(); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"shape not matching values", [](v1::PredictRequest* r) { r->mutable_inputs()->set_shape(0, 5); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"non-finite", [](v1::PredictRequest* r) { r->mutable_inputs()->set_values(3, NAN); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"infinite", [](v1::PredictRequest* r) { r->mutable_inputs()->set_values(3, INFINITY); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"empty batch",
       [](v1::PredictRequest* r) {
         r->mutable_inputs()->set_shape(0, 0);
         r->mutable_inputs()->clear_values();
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"one-dimensional", [](v1::PredictRequest* r) { r->mutable_inputs()->clear_shape(); },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"over max batch",
       [](v1::PredictRequest* r) {
         *r->mutable_inputs() = SyntheticData(10001, 12, 3, 1).features();
       },
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {"unknown model", [](v1::PredictRequest* r) { r->mutable_model()->set_name("nope"); },
       grpc::StatusCode::NOT_FOUND},
      {"unknown version", [](v1::PredictRequest* r) { r->mutable_model()->set_version(9); },
       grpc::StatusCode::NOT_FOUND},
      {"unknown alias", [](v1::PredictRequest* r) { r->mutable_model()->set_alias("prod"); },
       grpc::StatusCode::NOT_FOUND},
      {"batch statistics with one row",
       [](v1::PredictRequest* r) {
         r->set_bn_mode(v1::BATCH_STATISTICS);
         r->mutable_inputs()->set_shape(0, 1);
         r->mutable_inputs()->mutable_values()->Truncate(12);
       },
       grpc::StatusCode::INVALID_ARGUMENT},
      {"unknown bn mode", [](v1::PredictRequest* r) { r->set_bn_mode(static_cast<v1::BnMode>(9)); },
       grpc::StatusCode::INVALID_ARGUMENT},
  };
  for (const Case& c : cases) {
    v1::PredictRequest request;
    request.mutable_model()->set_name("v");
    *request.mutable_inputs() = good;
    c.mutate(&request);
    v1::PredictResponse response;
    grpc::Status status = Predict(request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.what << ": " << status.error_message();
    EXPECT_FALSE(status.error_message().empty()) << c.what;
    ExpectServing();
  }

  // Training requests through gRPC.
  auto train_code = [&](v1::TrainRequest request) {
    grpc::ClientContext context;
    v1::Job job;
    return training_->Train(&context, request, &job).error_code();
  };
  v1::TrainRequest bad = SmallTrainRequest("t", 1);
  bad.mutable_optimizer()->set_learning_rate(0);
  EXPECT_EQ(train_code(bad), grpc::StatusCode::INVALID_ARGUMENT);
  bad = SmallTrainRequest("t", 5001);
  EXPECT_EQ(train_code(bad), grpc::StatusCode::INVALID_ARGUMENT);
  bad = SmallTrainRequest("t", 1);
  bad.mutable_train_data()->mutable_idx()->set_images_path("/etc/passwd");
  bad.mutable_train_data()->mutable_idx()->set_labels_path("/etc/passwd");
  EXPECT_EQ(train_code(bad), grpc::StatusCode::INVALID_ARGUMENT);
  ExpectServing();

  // Evaluate: a data path outside the data directory.
  grpc::ClientContext context;
  v1::EvaluateRequest evaluate;
  evaluate.mutable_model()->set_name("v");
  evaluate.mutable_data()->mutable_idx()->set_images_path("mnist-digits/../../../../etc/passwd");
  evaluate.mutable_data()->mutable_idx()->set_labels_path("mnist-digits/t10k-labels-idx1-ubyte.gz");
  v1::EvaluateResponse evaluation;
  EXPECT_EQ(inference_->Evaluate(&context, evaluate, &evaluation).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ExpectServing();

  // Unknown job.
  grpc::ClientContext job_context;
  v1::GetJobRequest get;
  get.set_job_id("job-424242");
  v1::Job job;
  EXPECT_EQ(training_->GetJob(&job_context, get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  ExpectServing();
}

TEST_F(BnserveServerTest, EvaluateReportsLossAccuracyPerClassAndConfusion) {
  ASSERT_EQ(TrainSmall("ev", 3).state(), v1::SUCCEEDED);
  const v1::InlineData data = SyntheticData(90, 12, 3, 123);
  grpc::ClientContext context;
  v1::EvaluateRequest request;
  request.mutable_model()->set_name("ev");
  *request.mutable_data()->mutable_inline_data() = data;
  v1::EvaluateResponse response;
  ASSERT_TRUE(inference_->Evaluate(&context, request, &response).ok());
  EXPECT_EQ(response.num_classes(), 3);
  EXPECT_EQ(response.num_examples(), 90);
  ASSERT_EQ(response.confusion_matrix_size(), 9);
  ASSERT_EQ(response.per_class_accuracy_size(), 3);
  // Recompute from the core network.
  const Network<float> network = CoreNetworkOf(GetModel("ev", true));
  ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> x, MapTensor(data.features()));
  ASSERT_OK_AND_ASSIGN(Matrix p, network.PredictProbabilities(x, BnMode::kInference));
  std::vector<int64_t> confusion(9, 0);
  double loss = 0;
  int correct = 0;
  for (int r = 0; r < 90; ++r) {
    Eigen::Index best;
    p.row(r).maxCoeff(&best);
    ++confusion[data.labels(r) * 3 + best];
    correct += best == data.labels(r);
    loss -= std::log(p(r, data.labels(r)) + 1e-7);
  }
  EXPECT_THAT(response.confusion_matrix(), ::testing::ElementsAreArray(confusion));
  EXPECT_NEAR(response.accuracy(), correct / 90.0, 1e-12);
  EXPECT_NEAR(response.loss(), loss / 90, 1e-5);
  for (int c = 0; c < 3; ++c) {
    const int64_t total = confusion[c * 3] + confusion[c * 3 + 1] + confusion[c * 3 + 2];
    EXPECT_NEAR(response.per_class_accuracy(c),
                total == 0 ? 0.0 : static_cast<double>(confusion[c * 3 + c]) / total, 1e-12);
  }
}

TEST_F(BnserveServerTest, TrainsOnBuiltinDigitsAndPredictsAFullMaxBatch) {
  // mnist-digits, 200 samples, 2 epochs, small hidden layers.
  v1::TrainRequest request;
  request.set_model_name("digits");
  request.mutable_network()->add_hidden_sizes(32);
  request.mutable_network()->add_hidden_sizes(32);
  request.mutable_train_data()->mutable_builtin()->set_name("mnist-digits");
  request.mutable_train_data()->mutable_builtin()->set_limit(200);
  request.mutable_validation_data()->mutable_builtin()->set_name("mnist-digits");
  request.mutable_validation_data()->mutable_builtin()->set_split(v1::TEST);
  request.mutable_validation_data()->mutable_builtin()->set_limit(100);
  request.mutable_optimizer()->set_type(v1::ADAM);
  request.mutable_optimizer()->set_learning_rate(0.005);
  request.set_epochs(2);
  request.set_batch_size(20);
  request.set_seed(1);
  grpc::ClientContext context;
  v1::Job job;
  ASSERT_TRUE(training_->Train(&context, request, &job).ok());
  const v1::Job done = WaitForEnd(job.job_id());
  ASSERT_EQ(done.state(), v1::SUCCEEDED) << done.reason();
  EXPECT_EQ(GetModel("digits", false).network().input_size(), 784);

  // 10,000 x 784 floats (31 MB) in, 10,000 x 10 out.
  v1::PredictRequest predict;
  predict.mutable_model()->set_name("digits");
  *predict.mutable_inputs() = SyntheticData(10000, 784, 10, 3).features();
  v1::PredictResponse response;
  grpc::Status status = Predict(predict, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.predicted_classes_size(), 10000);

  // Evaluate on the built-in test split.
  grpc::ClientContext eval_context;
  v1::EvaluateRequest evaluate;
  evaluate.mutable_model()->set_name("digits");
  evaluate.mutable_data()->mutable_builtin()->set_name("mnist-digits");
  evaluate.mutable_data()->mutable_builtin()->set_split(v1::TEST);
  v1::EvaluateResponse evaluation;
  ASSERT_TRUE(inference_->Evaluate(&eval_context, evaluate, &evaluation).ok());
  EXPECT_EQ(evaluation.num_examples(), 2000);
  EXPECT_GT(evaluation.accuracy(), 0.3);  // 200 samples, 20 Adam steps: well above chance
  int64_t trace = 0, total = 0;
  for (int i = 0; i < 100; ++i) {
    total += evaluation.confusion_matrix(i);
    if (i % 11 == 0) trace += evaluation.confusion_matrix(i);
  }
  EXPECT_EQ(total, 2000);
  EXPECT_DOUBLE_EQ(evaluation.accuracy(), trace / 2000.0);
}

TEST_F(BnserveServerTest, RegistryServiceAliasesDeleteExportImport) {
  ASSERT_EQ(TrainSmall("reg", 1).state(), v1::SUCCEEDED);
  ASSERT_EQ(TrainSmall("reg", 1).state(), v1::SUCCEEDED);
  {
    grpc::ClientContext context;
    v1::SetAliasRequest request;
    request.set_model_name("reg");
    request.set_alias("production");
    request.set_version(1);
    v1::Model model;
    ASSERT_TRUE(registry_->SetAlias(&context, request, &model).ok());
    EXPECT_EQ(model.aliases().at("production"), 1);
    EXPECT_EQ(model.latest_version(), 2);
  }
  {
    grpc::ClientContext context;
    v1::SetAliasRequest request;
    request.set_model_name("reg");
    request.set_alias("123");
    request.set_version(1);
    v1::Model model;
    EXPECT_EQ(registry_->SetAlias(&context, request, &model).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  v1::PredictRequest predict;
  predict.mutable_model()->set_name("reg");
  predict.mutable_model()->set_alias("production");
  *predict.mutable_inputs() = SyntheticData(3, 12, 3, 1).features();
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(predict, &response).ok());
  EXPECT_EQ(response.model_version(), 1);
  {
    grpc::ClientContext context;
    v1::DeleteModelVersionRequest request;
    request.set_model_name("reg");
    request.set_version(1);
    google::protobuf::Empty empty;
    EXPECT_EQ(registry_->DeleteModelVersion(&context, request, &empty).error_code(),
              grpc::StatusCode::FAILED_PRECONDITION);
  }
  // Export version 1, import it under a new name: identical predictions.
  v1::ModelVersion exported;
  {
    grpc::ClientContext context;
    v1::ExportModelRequest request;
    request.mutable_model()->set_name("reg");
    request.mutable_model()->set_version(1);
    ASSERT_TRUE(registry_->ExportModel(&context, request, &exported).ok());
    EXPECT_GT(exported.tensors_size(), 0);
  }
  {
    grpc::ClientContext context;
    v1::ImportModelRequest request;
    *request.mutable_model() = exported;
    request.set_model_name("copy");
    v1::ModelVersion imported;
    ASSERT_TRUE(registry_->ImportModel(&context, request, &imported).ok());
    EXPECT_EQ(imported.model_name(), "copy");
    EXPECT_EQ(imported.version(), 1);
    EXPECT_EQ(imported.job_id(), "");
  }
  v1::PredictRequest copy_predict = predict;
  copy_predict.mutable_model()->set_name("copy");
  copy_predict.mutable_model()->clear_alias();
  v1::PredictResponse copy_response;
  ASSERT_TRUE(Predict(copy_predict, &copy_response).ok());
  EXPECT_EQ(copy_response.probabilities().SerializeAsString(),
            response.probabilities().SerializeAsString());
  {
    // A tensor that does not match the config.
    grpc::ClientContext context;
    v1::ImportModelRequest request;
    *request.mutable_model() = exported;
    request.mutable_model()->mutable_tensors()->RemoveLast();
    v1::ModelVersion imported;
    EXPECT_EQ(registry_->ImportModel(&context, request, &imported).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  // Alias gone -> the version can be deleted, and Predict on it is NOT_FOUND.
  {
    grpc::ClientContext context;
    v1::DeleteAliasRequest request;
    request.set_model_name("reg");
    request.set_alias("production");
    google::protobuf::Empty empty;
    ASSERT_TRUE(registry_->DeleteAlias(&context, request, &empty).ok());
  }
  {
    grpc::ClientContext context;
    v1::DeleteModelVersionRequest request;
    request.set_model_name("reg");
    request.set_version(1);
    google::protobuf::Empty empty;
    ASSERT_TRUE(registry_->DeleteModelVersion(&context, request, &empty).ok());
  }
  predict.mutable_model()->set_version(1);
  EXPECT_EQ(Predict(predict, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext context;
  v1::ListModelsResponse models;
  ASSERT_TRUE(registry_->ListModels(&context, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 2);
  EXPECT_EQ(models.models(0).name(), "copy");
  EXPECT_THAT(models.models(1).versions(), ::testing::ElementsAre(2));
}

TEST_F(BnserveServerTest, PredictFollowsEveryRegistryWriteAtOnce) {
  // Predict resolves names in memory; each write must show in the next call.
  auto predict = [&](const v1::ModelRef& model, v1::PredictResponse* response) {
    v1::PredictRequest request;
    *request.mutable_model() = model;
    *request.mutable_inputs() = SyntheticData(2, 12, 3, 1).features();
    return Predict(request, response);
  };
  v1::ModelRef latest;
  latest.set_name("live");
  v1::ModelRef prod = latest;
  prod.set_alias("prod");
  v1::PredictResponse response;
  EXPECT_EQ(predict(latest, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(TrainSmall("live", 1).state(), v1::SUCCEEDED);
  ASSERT_TRUE(predict(latest, &response).ok());
  EXPECT_EQ(response.model_version(), 1);
  // A job registers a new version: "latest" answers with it.
  ASSERT_EQ(TrainSmall("live", 1).state(), v1::SUCCEEDED);
  ASSERT_TRUE(predict(latest, &response).ok());
  EXPECT_EQ(response.model_version(), 2);
  auto set_alias = [&](int version) {
    grpc::ClientContext context;
    v1::SetAliasRequest request;
    request.set_model_name("live");
    request.set_alias("prod");
    request.set_version(version);
    v1::Model model;
    return registry_->SetAlias(&context, request, &model);
  };
  ASSERT_TRUE(set_alias(1).ok());
  ASSERT_TRUE(predict(prod, &response).ok());
  EXPECT_EQ(response.model_version(), 1);
  ASSERT_TRUE(set_alias(2).ok());  // moved
  ASSERT_TRUE(predict(prod, &response).ok());
  EXPECT_EQ(response.model_version(), 2);
  {
    grpc::ClientContext context;
    v1::DeleteAliasRequest request;
    request.set_model_name("live");
    request.set_alias("prod");
    google::protobuf::Empty empty;
    ASSERT_TRUE(registry_->DeleteAlias(&context, request, &empty).ok());
  }
  EXPECT_EQ(predict(prod, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext context;
    v1::DeleteModelVersionRequest request;
    request.set_model_name("live");
    request.set_version(2);
    google::protobuf::Empty empty;
    ASSERT_TRUE(registry_->DeleteModelVersion(&context, request, &empty).ok());
  }
  v1::ModelRef second = latest;
  second.set_version(2);
  EXPECT_EQ(predict(second, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(predict(latest, &response).ok());
  EXPECT_EQ(response.model_version(), 1);
  // An import is a new version too.
  v1::ModelVersion exported;
  {
    grpc::ClientContext context;
    v1::ExportModelRequest request;
    request.mutable_model()->set_name("live");
    ASSERT_TRUE(registry_->ExportModel(&context, request, &exported).ok());
  }
  {
    grpc::ClientContext context;
    v1::ImportModelRequest request;
    *request.mutable_model() = exported;
    v1::ModelVersion imported;
    ASSERT_TRUE(registry_->ImportModel(&context, request, &imported).ok());
    EXPECT_EQ(imported.version(), 3);
  }
  ASSERT_TRUE(predict(latest, &response).ok());
  EXPECT_EQ(response.model_version(), 3);
}

TEST_F(BnserveServerTest, WatchJobStreamsHistoryThenLiveEventsOverTcp) {
  // Over a real loopback port this time.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                     grpc::InsecureChannelCredentials());
  auto training = v1::TrainingService::NewStub(channel);
  grpc::ClientContext train_context;
  v1::Job job;
  ASSERT_TRUE(training->Train(&train_context, SmallTrainRequest("w", 3), &job).ok());
  // Join possibly mid-way; read to the end.
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  std::unique_ptr<grpc::ClientReader<v1::JobEvent>> reader = training->WatchJob(&context, request);
  std::vector<v1::JobEvent> events;
  v1::JobEvent event;
  while (reader->Read(&event)) events.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].state(), v1::QUEUED);
  EXPECT_EQ(events[1].state(), v1::RUNNING);
  EXPECT_EQ(events[4].epoch().epoch(), 3);
  EXPECT_EQ(events[5].finished().state(), v1::SUCCEEDED);

  // A late join after the end gets the same history.
  grpc::ClientContext late_context;
  reader = training->WatchJob(&late_context, request);
  std::vector<v1::JobEvent> late;
  while (reader->Read(&event)) late.push_back(event);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(late.size(), events.size());
  for (size_t i = 0; i < late.size(); ++i) {
    EXPECT_EQ(late[i].SerializeAsString(), events[i].SerializeAsString()) << i;
  }
  grpc::ClientContext missing_context;
  request.set_job_id("job-777777");
  reader = training->WatchJob(&missing_context, request);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BnserveServerTest, WatchersThatLeaveMidStreamDoNotDisturbTheJobOrTheServer) {
  v1::TrainRequest long_request = SmallTrainRequest("watched-long", 5000);
  long_request.set_batch_size(2);
  grpc::ClientContext context;
  v1::Job job;
  ASSERT_TRUE(training_->Train(&context, long_request, &job).ok());
  std::vector<std::thread> watchers;
  std::atomic<int> read_some{0};
  for (int w = 0; w < 8; ++w) {
    watchers.emplace_back([&] {
      grpc::ClientContext watch_context;
      v1::WatchJobRequest request;
      request.set_job_id(job.job_id());
      auto reader = training_->WatchJob(&watch_context, request);
      v1::JobEvent event;
      int events = 0;
      while (events < 4 && reader->Read(&event)) ++events;  // QUEUED, RUNNING, 2 epochs
      if (events == 4) ++read_some;
      watch_context.TryCancel();
      while (reader->Read(&event)) {
      }
      EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    });
  }
  for (std::thread& watcher : watchers) watcher.join();
  EXPECT_EQ(read_some.load(), 8);
  grpc::ClientContext get_context;
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job running;
  ASSERT_TRUE(training_->GetJob(&get_context, get, &running).ok());
  EXPECT_EQ(running.state(), v1::RUNNING);
  // A watcher that stays to the end sees the cancellation as the last event.
  grpc::ClientContext watch_context;
  v1::WatchJobRequest request;
  request.set_job_id(job.job_id());
  auto reader = training_->WatchJob(&watch_context, request);
  v1::JobEvent event;
  ASSERT_TRUE(reader->Read(&event));
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  ASSERT_TRUE(training_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  v1::JobEvent last;
  while (reader->Read(&event)) last = event;
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(last.has_finished());
  EXPECT_EQ(last.finished().state(), v1::CANCELLED);
  ExpectServing();
}

TEST_F(BnserveServerTest, PredictRunsConcurrentlyWithTraining) {
  ASSERT_EQ(TrainSmall("served", 1).state(), v1::SUCCEEDED);
  v1::TrainRequest long_request = SmallTrainRequest("busy", 5000);
  long_request.set_batch_size(2);
  grpc::ClientContext context;
  v1::Job job;
  ASSERT_TRUE(training_->Train(&context, long_request, &job).ok());

  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        v1::PredictRequest request;
        request.mutable_model()->set_name("served");
        *request.mutable_inputs() = SyntheticData(16, 12, 3, t * 100 + i).features();
        v1::PredictResponse response;
        if (Predict(request, &response).ok() && response.predicted_classes_size() == 16) ++ok;
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(ok.load(), 100);
  grpc::ClientContext get_context;
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job running;
  ASSERT_TRUE(training_->GetJob(&get_context, get, &running).ok());
  EXPECT_EQ(running.state(), v1::RUNNING);  // training went on meanwhile

  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  ASSERT_TRUE(training_->CancelJob(&cancel_context, cancel, &cancelled).ok());
  EXPECT_EQ(WaitForEnd(job.job_id()).state(), v1::CANCELLED);
}

TEST_F(BnserveServerTest, HealthServiceReportsServing) {
  for (const std::string& service :
       {std::string(""), std::string("bnserve.v1.TrainingService"),
        std::string("bnserve.v1.InferenceService"), std::string("bnserve.v1.ModelRegistry")}) {
    grpc::Status status;
    const std::string response = HealthCheck(channel_, service, &status);
    ASSERT_TRUE(status.ok()) << service << ": " << status.error_message();
    EXPECT_EQ(response, std::string("\x08\x01", 2)) << service;  // SERVING
  }
  grpc::Status status;
  HealthCheck(channel_, "no.such.Service", &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BnserveServerTest, ShutdownCancelsRunningJobsAndARestartKeepsEverything) {
  ASSERT_EQ(TrainSmall("kept", 1).state(), v1::SUCCEEDED);
  v1::TrainRequest long_request = SmallTrainRequest("busy", 5000);
  long_request.set_batch_size(2);
  grpc::ClientContext context;
  v1::Job job;
  ASSERT_TRUE(training_->Train(&context, long_request, &job).ok());
  server_->Shutdown(absl::Seconds(2));
  EXPECT_EQ(server_->jobs()->Get(job.job_id())->state(), v1::CANCELLED);
  EXPECT_EQ(server_->jobs()->Get(job.job_id())->reason(), "server shutting down");
  server_.reset();

  StartServer();
  const v1::ModelVersion kept = GetModel("kept", false);
  EXPECT_EQ(kept.version(), 1);
  const v1::Job restored = WaitForEnd(job.job_id());
  EXPECT_EQ(restored.state(), v1::CANCELLED);
  EXPECT_EQ(restored.reason(), "server shutting down");
  grpc::ClientContext list_context;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(training_->ListJobs(&list_context, v1::ListJobsRequest(), &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 2);
}

// The metrics after a known sequence of calls: one small training job, three
// Predicts of 5 rows that succeed, two that fail on their inputs, one for a
// model that does not exist, and one V2 ModelInfer. Every count is exact.
TEST_F(BnserveServerTest, MetricsMatchTheTrafficExactly) {
  ASSERT_EQ(TrainSmall("counted", 2).state(), v1::SUCCEEDED);  // 200 rows, batch 20
  v1::PredictRequest request;
  request.mutable_model()->set_name("counted");
  *request.mutable_inputs() = SyntheticData(5, 12, 3, 21).features();
  v1::PredictResponse response;
  ASSERT_TRUE(Predict(request, &response).ok());
  ASSERT_TRUE(Predict(request, &response).ok());
  v1::PredictRequest batch_statistics = request;
  batch_statistics.set_bn_mode(v1::BATCH_STATISTICS);
  ASSERT_TRUE(Predict(batch_statistics, &response).ok());
  v1::PredictRequest not_finite = request;
  not_finite.mutable_inputs()->set_values(3, std::nanf(""));
  EXPECT_EQ(Predict(not_finite, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::PredictRequest wrong_features = request;
  *wrong_features.mutable_inputs() = SyntheticData(5, 11, 3, 21).features();
  EXPECT_EQ(Predict(wrong_features, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::PredictRequest unknown = request;
  unknown.mutable_model()->set_name("nobody");
  EXPECT_EQ(Predict(unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  // And one V2 ModelInfer of the same 5 rows, through the gRPC service.
  auto v2 = inference::GRPCInferenceService::NewStub(channel_);
  inference::ModelInferRequest infer;
  infer.set_model_name("counted");
  inference::ModelInferRequest::InferInputTensor* input = infer.add_inputs();
  input->set_name("input");
  input->set_datatype("FP32");
  input->add_shape(5);
  input->add_shape(12);
  *input->mutable_contents()->mutable_fp32_contents() = request.inputs().values();
  inference::ModelInferResponse infer_response;
  grpc::ClientContext infer_context;
  ASSERT_TRUE(v2->ModelInfer(&infer_context, infer, &infer_response).ok());

  const std::string text = server_->MetricsText()();
  const std::vector<testing::MetricSample> samples = testing::ParseExposition(text);
  auto sum = [&](const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    return testing::SumOf(samples, name, labels);
  };
  const std::map<std::string, std::string> model = {{"model", "counted"}, {"version", "1"}};
  // Triton's counters: three Predicts and one ModelInfer.
  EXPECT_EQ(sum("nv_inference_request_success", model), 4);
  EXPECT_EQ(sum("nv_inference_count", model), 20);
  EXPECT_EQ(sum("nv_inference_exec_count", model), 4);
  EXPECT_EQ(sum("nv_inference_request_failure",
                {{"model", "counted"}, {"version", "1"}, {"reason", "OTHER"}}),
            2);
  EXPECT_EQ(sum("nv_inference_request_failure"), 2);
  EXPECT_GT(sum("nv_inference_request_duration_us", model), 0);
  EXPECT_LE(sum("nv_inference_compute_infer_duration_us", model),
            sum("nv_inference_request_duration_us", model));
  EXPECT_EQ(sum("bnserve_inference_unresolved_requests_total", {{"protocol", "v1_grpc"}}), 1);
  // The latency histograms: one observation per success, by bn_mode.
  std::map<std::string, std::string> series = model;
  series["protocol"] = "v1_grpc";
  series["bn_mode"] = "inference";
  EXPECT_EQ(sum("bnserve_inference_request_duration_seconds_count", series), 2);
  series["bn_mode"] = "batch_statistics";
  EXPECT_EQ(sum("bnserve_inference_request_duration_seconds_count", series), 1);
  series["protocol"] = "v2_grpc";
  series["bn_mode"] = "inference";
  EXPECT_EQ(sum("bnserve_inference_request_duration_seconds_count", series), 1);
  EXPECT_EQ(sum("bnserve_inference_compute_duration_seconds_count"), 4);
  // gRPC calls by method and code.
  auto handled = [&](const std::string& method, const std::string& code) {
    return sum("bnserve_grpc_server_handled_total", {{"grpc_method", method}, {"grpc_code", code}});
  };
  EXPECT_EQ(handled("Predict", "OK"), 3);
  EXPECT_EQ(handled("Predict", "InvalidArgument"), 2);
  EXPECT_EQ(handled("Predict", "NotFound"), 1);
  EXPECT_EQ(sum("bnserve_grpc_server_started_total", {{"grpc_method", "Predict"}}), 6);
  EXPECT_EQ(handled("Train", "OK"), 1);
  EXPECT_EQ(sum("bnserve_grpc_server_handled_total",
                {{"grpc_service", "inference.GRPCInferenceService"},
                 {"grpc_method", "ModelInfer"},
                 {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(handled("GetJob", "OK"), sum("bnserve_grpc_server_started_total",
                                         {{"grpc_method", "GetJob"}}));  // TrainSmall's polls
  // The model cache: the first Predict built the network, the next two, the
  // one with the wrong feature count and the ModelInfer found it; the
  // non-finite input was refused before the lookup, the unknown model never
  // reached the cache.
  EXPECT_EQ(sum("bnserve_model_cache_misses_total"), 1);
  EXPECT_EQ(sum("bnserve_model_cache_hits_total"), 4);
  const ModelCacheStats cache = server_->catalog()->cache_stats();
  EXPECT_EQ(cache.hits, 4);
  EXPECT_EQ(cache.misses, 1);
  EXPECT_EQ(sum("bnserve_model_cache_entries"), 1);
  // The training job: two epochs of 200 rows.
  EXPECT_EQ(sum("bnserve_jobs", {{"state", "succeeded"}}), 1);
  EXPECT_EQ(sum("bnserve_jobs"), 1);
  EXPECT_EQ(sum("bnserve_job_queue_depth"), 0);
  EXPECT_EQ(sum("bnserve_job_queue_capacity"), 64);
  EXPECT_EQ(sum("bnserve_training_epochs_total"), 2);
  EXPECT_EQ(sum("bnserve_training_rows_total"), 400);
  EXPECT_GT(sum("bnserve_training_rows_per_second"), 0);
  EXPECT_EQ(sum("bnserve_training_epoch_duration_seconds_count"), 2);
  // The registry.
  EXPECT_EQ(sum("bnserve_registry_models"), 1);
  EXPECT_EQ(sum("bnserve_registry_versions", {{"model", "counted"}}), 1);

  EXPECT_EQ(testing::ExpectHistogramsConsistent(text), 2 * 3 + 1);
  testing::ExpectPromtoolAccepts(text);
}

// An HTTP server may scrape while the server shuts down: the text still
// comes, with the jobs' final states.
TEST_F(BnserveServerTest, MetricsStillAnswerAfterShutdown) {
  std::function<std::string()> metrics_text = server_->MetricsText();
  EXPECT_THAT(metrics_text(), ::testing::HasSubstr("bnserve_jobs{"));
  server_->Shutdown();
  EXPECT_THAT(metrics_text(), ::testing::HasSubstr("bnserve_jobs{"));
  ServerMetrics* metrics = server_->metrics();
  EXPECT_EQ(metrics->TextExposition(), metrics_text());
}

}  // namespace
}  // namespace bnserve
