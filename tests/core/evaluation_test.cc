#include "core/evaluation.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "core/network.h"
#include "core/network_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::RandomInput;
using ::bnserve::testing::RandomLabels;
using ::bnserve::testing::StatusIs;
using ::testing::HasSubstr;

NetworkConfig SmallConfig() {
  NetworkConfig config;
  config.input_size = 12;
  config.hidden_sizes = {16, 16};
  config.output_size = 3;
  return config;
}

Dataset RandomData(int rows) {
  Dataset data;
  data.name = "random";
  data.num_classes = 3;
  data.features = RandomInput(rows, 12, 5);
  data.labels = RandomLabels(rows, 3, 6);
  return data;
}

TEST(EvaluationTest, SlicesGiveTheNumbersOfOnePassOverEveryRow) {
  ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(SmallConfig(), 3));
  const Dataset data = RandomData(50);
  EvaluationOptions options;
  options.slice_rows = 7;  // seven slices and one of 1 row
  ASSERT_OK_AND_ASSIGN(Evaluation sliced, EvaluateNetwork(network, data, options));

  ASSERT_OK_AND_ASSIGN(Matrix p, network.PredictProbabilities(data.features, BnMode::kInference));
  std::vector<int64_t> confusion(9, 0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (Eigen::Index r = 0; r < p.rows(); ++r) {
    Eigen::Index predicted = 0;
    p.row(r).maxCoeff(&predicted);
    loss_sum -= std::log(static_cast<double>(p(r, data.labels(r))) + 1e-7);
    ++confusion[static_cast<size_t>(data.labels(r)) * 3 + predicted];
    if (predicted == data.labels(r)) ++correct;
  }
  EXPECT_EQ(sliced.num_examples, 50);
  EXPECT_EQ(sliced.num_classes, 3);
  EXPECT_EQ(sliced.loss, loss_sum / 50);
  EXPECT_EQ(sliced.accuracy, correct / 50.0);
  EXPECT_EQ(sliced.confusion, confusion);
  ASSERT_EQ(sliced.per_class_accuracy.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    const int64_t total = confusion[c * 3] + confusion[c * 3 + 1] + confusion[c * 3 + 2];
    EXPECT_EQ(sliced.per_class_accuracy[c],
              total == 0 ? 0.0 : static_cast<double>(confusion[c * 3 + c]) / total);
  }
  // The trainer's sliced accuracy agrees.
  ASSERT_OK_AND_ASSIGN(double accuracy, EvaluateAccuracy(network, data));
  EXPECT_EQ(accuracy, correct / 50.0);
}

TEST(EvaluationTest, APassOverTheByteLimitIsRefusedBeforeRunning) {
  ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(SmallConfig(), 3));
  EvaluationOptions options;
  options.slice_rows = 8;
  options.max_pass_bytes = EstimateEvaluationBytes(SmallConfig(), 10);
  options.mode = BnMode::kBatchStatistics;  // one pass of all 50 rows
  const absl::Status status = EvaluateNetwork(network, RandomData(50), options).status();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(std::string(status.message()), HasSubstr("BATCH_STATISTICS"));
  EXPECT_OK(EvaluateNetwork(network, RandomData(10), options).status());
  options.mode = BnMode::kInference;  // slices of 8 rows
  EXPECT_OK(EvaluateNetwork(network, RandomData(50), options).status());
}

TEST(EvaluationTest, DataThatDoNotFitTheNetworkAreInvalid) {
  ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(SmallConfig(), 3));
  const EvaluationOptions options;
  EXPECT_THAT(EvaluateNetwork(network, Dataset(), options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Dataset narrow = RandomData(5);
  narrow.features = RandomInput(5, 11, 1);
  EXPECT_THAT(EvaluateNetwork(network, narrow, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  Dataset bad_label = RandomData(5);
  bad_label.labels(2) = 3;
  EXPECT_THAT(EvaluateNetwork(network, bad_label, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EvaluationOptions batch_statistics;
  batch_statistics.mode = BnMode::kBatchStatistics;
  EXPECT_THAT(EvaluateNetwork(network, RandomData(1), batch_statistics),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(EvaluationTest, ForwardEstimateGrowsWithRowsAndTheWidestLayer) {
  NetworkConfig wide = SmallConfig();
  wide.hidden_sizes = {16, 4096};
  EXPECT_GT(EstimateForwardBytes(wide, 10), EstimateForwardBytes(SmallConfig(), 10));
  EXPECT_EQ(EstimateForwardBytes(wide, 60000), 6000 * EstimateForwardBytes(wide, 10));
  // Four matrices of the widest layer per row.
  EXPECT_EQ(EstimateForwardBytes(wide, 1), 4 * 4096 * 4);
  EXPECT_EQ(ForwardFloatsPerRow(wide), 3 * 4096);
  EXPECT_EQ(EstimateForwardBytes(wide, INT64_MAX / 2), INT64_MAX);
  // An evaluation also holds the classes x classes confusion matrix.
  EXPECT_EQ(EstimateEvaluationBytes(wide, 1),
            EstimateForwardBytes(wide, 1) + int64_t{8} * wide.output_size * wide.output_size);
  EXPECT_EQ(EstimateEvaluationBytes(wide, INT64_MAX / 2), INT64_MAX);
}

}  // namespace
}  // namespace bnserve
