// Independent verification of the ONNX export: models trained by a real
// server on mnist-digits, exported through ModelRegistry.ExportModel (format
// ONNX, unfolded and folded), run in ONNX Runtime (onnxruntime-node, through
// tests/onnx/ort_predict.js) on the first 200 test digits, and compared with
// the same server's Predict of the same rows: max abs difference on the
// probabilities <= 1e-5 and the same argmax on every row.
//
// ONNX Runtime comes from scripts/setup.sh; without it these tests fail
// (ort_predict.js exits 2 and says how to install it), they never skip.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bnserve/v1/inference_service.grpc.pb.h"
#include "bnserve/v1/model_registry.grpc.pb.h"
#include "bnserve/v1/training_service.grpc.pb.h"
#include "core/builtin_datasets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "server/bnserve_server.h"
#include "server/proto_convert.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

constexpr int kRows = 200;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult RunShell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

class OnnxRuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each test in a process of its own, concurrently: one
    // directory per process.
    dir_ = new std::string(
        absl::StrCat(::testing::TempDir(), "/bnserve_onnx_runtime_test_", getpid()));
    std::filesystem::remove_all(*dir_);
    std::filesystem::create_directories(*dir_);
    BnserveServerOptions options;
    options.listen = "";  // in-process channel only
    options.registry_path = *dir_ + "/registry.db";
    options.data_dir = BNSERVE_SOURCE_DIR "/var/data";
    absl::StatusOr<std::unique_ptr<BnserveServer>> server = BnserveServer::Start(options);
    ASSERT_OK(server.status());
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    channel_ = server_->InProcessChannel();
    absl::StatusOr<Dataset> test = LoadBuiltinDataset(BNSERVE_SOURCE_DIR "/var/data",
                                                      "mnist-digits", Split::kTest, kRows);
    ASSERT_OK(test.status()) << " (scripts/setup.sh prepares var/data)";
    ASSERT_EQ(test->size(), kRows);
    rows_ = test->features;
  }

  // Trains `network` on 1,000 training digits for 2 epochs and returns when
  // the job has succeeded.
  void Train(const std::string& model, const v1::NetworkConfig& network) {
    auto training = v1::TrainingService::NewStub(channel_);
    v1::TrainRequest request;
    request.set_model_name(model);
    *request.mutable_network() = network;
    request.mutable_optimizer()->set_type(v1::ADAM);
    request.mutable_train_data()->mutable_builtin()->set_name("mnist-digits");
    request.mutable_train_data()->mutable_builtin()->set_limit(1000);
    request.set_epochs(2);
    request.set_seed(5);
    grpc::ClientContext context;
    v1::Job job;
    ASSERT_TRUE(training->Train(&context, request, &job).ok());
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (job.state() != v1::SUCCEEDED && absl::Now() < deadline) {
      ASSERT_NE(job.state(), v1::FAILED) << job.reason();
      ASSERT_NE(job.state(), v1::CANCELLED) << job.reason();
      absl::SleepFor(absl::Milliseconds(20));
      grpc::ClientContext get_context;
      v1::GetJobRequest get;
      get.set_job_id(job.job_id());
      ASSERT_TRUE(training->GetJob(&get_context, get, &job).ok());
    }
    ASSERT_EQ(job.state(), v1::SUCCEEDED);
  }

  // ExportModel(format ONNX) of the latest version, written to a file whose
  // path is returned; the model passes ONNX's checker.
  std::string Export(const std::string& model, bool fold) {
    auto registry = v1::ModelRegistry::NewStub(channel_);
    v1::ExportModelRequest request;
    request.mutable_model()->set_name(model);
    request.set_format(v1::ExportModelRequest::ONNX);
    request.set_fold_batchnorm(fold);
    grpc::ClientContext context;
    v1::ModelVersion exported;
    grpc::Status status = registry->ExportModel(&context, request, &exported);
    EXPECT_TRUE(status.ok()) << status.error_message();
    onnx::ModelProto parsed;
    EXPECT_TRUE(parsed.ParseFromString(exported.onnx_model()));
    EXPECT_NO_THROW(onnx::checker::check_model(parsed));
    const std::string path = absl::StrCat(*dir_, "/", model, fold ? "-folded" : "", ".onnx");
    std::ofstream(path, std::ios::binary) << exported.onnx_model();
    return path;
  }

  v1::PredictResponse Predict(const std::string& model) {
    auto inference = v1::InferenceService::NewStub(channel_);
    v1::PredictRequest request;
    request.mutable_model()->set_name(model);
    MatrixToTensor(rows_, request.mutable_inputs());
    grpc::ClientContext context;
    v1::PredictResponse response;
    grpc::Status status = inference->Predict(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  // The probabilities ONNX Runtime computes for rows_ with the model at `path`.
  Matrix RunInOnnxRuntime(const std::string& path) {
    const std::string rows_path = *dir_ + "/rows.f32";
    const std::string out_path = path + ".out.f32";
    std::ofstream(rows_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(rows_.data()), rows_.size() * sizeof(float));
    const CommandResult result =
        RunShell(absl::StrCat(BNSERVE_NODE, " ", BNSERVE_SOURCE_DIR "/tests/onnx/ort_predict.js ", path,
                         " ", rows_path, " ", kRows, " ", rows_.cols(), " ", out_path));
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, ::testing::HasSubstr("\"dims\":[200,10]")) << result.output;
    std::ifstream in(out_path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Matrix probabilities = Matrix::Zero(kRows, 10);
    EXPECT_EQ(bytes.size(), probabilities.size() * sizeof(float));
    if (bytes.size() == probabilities.size() * sizeof(float)) {
      std::memcpy(probabilities.data(), bytes.data(), bytes.size());
    }
    return probabilities;
  }

  // ORT's answers for both exports of `model` against the server's Predict.
  void ExpectOnnxRuntimeAgreesWithPredict(const std::string& model) {
    const v1::PredictResponse predicted = Predict(model);
    ASSERT_OK_AND_ASSIGN(ConstMatrixMapT<float> expected, MapTensor(predicted.probabilities()));
    ASSERT_EQ(expected.rows(), kRows);
    for (bool fold : {false, true}) {
      const Matrix actual = RunInOnnxRuntime(Export(model, fold));
      const float max_diff = (actual - expected).cwiseAbs().maxCoeff();
      EXPECT_LE(max_diff, 1e-5f) << model << (fold ? " folded" : " unfolded");
      int argmax_differs = 0;
      for (int r = 0; r < kRows; ++r) {
        Eigen::Index best = 0;
        actual.row(r).maxCoeff(&best);
        if (best != predicted.predicted_classes(r)) ++argmax_differs;
      }
      EXPECT_EQ(argmax_differs, 0) << model << (fold ? " folded" : " unfolded");
      // The rows really are classified, not all alike.
      EXPECT_GT((actual.rowwise() - actual.row(0)).cwiseAbs().maxCoeff(), 0.1f);
      std::printf("%s %s: max |ORT - Predict| = %.3g over %d x 10 probabilities\n",
                  model.c_str(), fold ? "folded" : "unfolded", max_diff, kRows);
    }
  }

  static std::string* dir_;
  static BnserveServer* server_;
  std::shared_ptr<grpc::Channel> channel_;
  Matrix rows_;
};

std::string* OnnxRuntimeTest::dir_ = nullptr;
BnserveServer* OnnxRuntimeTest::server_ = nullptr;

// The book's seed network: 784-100x5-10, ReLU, He, BatchNorm (eps 1e-6).
TEST_F(OnnxRuntimeTest, SeedNetworkGivesPredictsAnswersInOnnxRuntime) {
  v1::NetworkConfig network;
  for (int i = 0; i < 5; ++i) network.add_hidden_sizes(100);
  Train("seed", network);
  ExpectOnnxRuntimeAgreesWithPredict("seed");
}

// Sigmoid with dropout (a Mul by 1 - ratio in the graph) and an epsilon far
// from ONNX's default, so a missing or wrong epsilon attribute would show.
TEST_F(OnnxRuntimeTest, SigmoidDropoutAndOwnEpsilonGivePredictsAnswersInOnnxRuntime) {
  v1::NetworkConfig network;
  network.add_hidden_sizes(64);
  network.add_hidden_sizes(32);
  network.set_activation(v1::SIGMOID);
  network.set_dropout_ratio(0.2);
  network.set_bn_eps(0.1);
  Train("sigmoid", network);
  ExpectOnnxRuntimeAgreesWithPredict("sigmoid");
}

// Tanh without BatchNorm: folded and unfolded exports are the same graph.
TEST_F(OnnxRuntimeTest, TanhWithoutBatchNormGivesPredictsAnswersInOnnxRuntime) {
  v1::NetworkConfig network;
  network.add_hidden_sizes(50);
  network.set_activation(v1::TANH);
  network.set_use_batchnorm(false);
  Train("tanh", network);
  ExpectOnnxRuntimeAgreesWithPredict("tanh");
}

}  // namespace
}  // namespace bnserve
