// Predictor, the one inference path: its limits are checked before any
// buffer is allocated, and an answer that overflowed float is refused.
#include "server/predictor.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/network.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/proto_convert.h"
#include "server/sqlite_model_store.h"
#include "tests/server/server_test_util.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;
using ::bnserve::testing::TempPath;
using ::testing::HasSubstr;

class PredictorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(store_, SqliteModelStore::Open(TempPath("predictor.db")));
    catalog_ = std::make_unique<ModelCatalog>(store_.get());
  }

  // Registers a fresh network; with `first_weights` set, every entry of W1
  // is that value.
  void Register(const std::string& name, int inputs, std::vector<int> hidden, int classes,
                float first_weights = 0) {
    NetworkConfig config;
    config.input_size = inputs;
    config.hidden_sizes = std::move(hidden);
    config.output_size = classes;
    ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(config, 1));
    if (first_weights != 0) {
      std::map<std::string, Matrix> tensors = network.ExportTensors();
      tensors["W1"].setConstant(first_weights);
      ASSERT_OK(network.ImportTensors(tensors));
    }
    v1::ModelVersion version;
    version.set_model_name(name);
    ASSERT_OK(catalog_->RegisterNetwork(network, version, nullptr).status());
  }

  v1::ModelRef Ref(const std::string& name) {
    v1::ModelRef ref;
    ref.set_name(name);
    return ref;
  }

  std::unique_ptr<SqliteModelStore> store_;
  std::unique_ptr<ModelCatalog> catalog_;
};

TEST_F(PredictorTest, PredictsProbabilitiesAndTheirArgmax) {
  Register("m", 12, {16, 8}, 3);
  Predictor predictor(catalog_.get(), 100);
  const Matrix rows = testing::RandomInput(7, 12, 1);
  ASSERT_OK_AND_ASSIGN(Prediction p, predictor.Predict(Ref("m"), rows, BnMode::kInference));
  EXPECT_EQ(p.model_name, "m");
  EXPECT_EQ(p.version, 1);
  ASSERT_EQ(p.probabilities.rows(), 7);
  ASSERT_EQ(p.predicted_classes.size(), 7u);
  for (int r = 0; r < 7; ++r) {
    Eigen::Index best;
    p.probabilities.row(r).maxCoeff(&best);
    EXPECT_EQ(p.predicted_classes[r], best);
    EXPECT_NEAR(p.probabilities.row(r).sum(), 1.0, 1e-5);
  }
}

// The case, at the class limit: a 1-1-4096 model, a small request,
// a large answer.
TEST_F(PredictorTest, AnAnswerBeyondTheMessageLimitIsRefusedBeforeComputing) {
  Register("wide-out", 1, {1}, kMaxClasses);
  PredictorOptions options;
  options.max_response_bytes = int64_t{1} << 20;
  Predictor predictor(catalog_.get(), options);
  const Matrix rows = testing::RandomInput(160, 1, 2);  // 160 x 4096 x 4 B = 2.5 MiB
  absl::StatusOr<Prediction> p = predictor.Predict(Ref("wide-out"), rows, BnMode::kInference);
  EXPECT_THAT(p, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("message limit of 1 MiB"));
  // Fewer rows fit.
  EXPECT_OK(predictor.Predict(Ref("wide-out"), testing::RandomInput(40, 1, 2),
                              BnMode::kInference)
                .status());
}

TEST_F(PredictorTest, AForwardPassBeyondTheMemoryLimitIsRefused) {
  Register("wide", 8, {2048, 2048}, 10);
  PredictorOptions options;
  options.max_forward_bytes = int64_t{4} << 20;
  Predictor predictor(catalog_.get(), options);
  absl::StatusOr<Prediction> p =
      predictor.Predict(Ref("wide"), testing::RandomInput(2000, 8, 3), BnMode::kInference);
  EXPECT_THAT(p, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("--max_job_memory_mb"));
  EXPECT_OK(
      predictor.Predict(Ref("wide"), testing::RandomInput(4, 8, 3), BnMode::kInference).status());
}

TEST_F(PredictorTest, InputsThatOverflowTheOutputsAreInvalid) {
  Register("m", 784, {64, 32}, 10, /*first_weights=*/0.5f);
  Predictor predictor(catalog_.get(), 100);
  // Finite inputs, but x W1 overflows float (784 x 0.5 x 3e38): the +inf
  // hidden units meet weights of both signs in the next layer, inf - inf.
  Matrix rows = Matrix::Constant(4, 784, 3e38f);
  absl::StatusOr<Prediction> p = predictor.Predict(Ref("m"), rows, BnMode::kInference);
  EXPECT_THAT(p, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("overflow"));
  rows(0, 0) = std::numeric_limits<float>::infinity();
  EXPECT_THAT(predictor.Predict(Ref("m"), rows, BnMode::kInference),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(predictor.Predict(Ref("m"), testing::RandomInput(101, 784, 1), BnMode::kInference),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

}  // namespace
}  // namespace bnserve
