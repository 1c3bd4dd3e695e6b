#include "core/batchnorm_experiment.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "core/builtin_datasets.h"
#include "core/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::StatusIs;

TEST(BatchNormExperimentTest, BookResultAtWeightStd005) {
  // The book's NumPy code reaches 0.949 (BatchNorm) / 0.129 (plain) here.
  ASSERT_OK_AND_ASSIGN(Dataset train, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                         Split::kTrain));
  BatchNormExperimentOptions options;  // std 0.05, 20 epochs, seed 1, the first 1,000 rows
  int bn_epochs = 0;
  int plain_epochs = 0;
  ASSERT_OK_AND_ASSIGN(
      BatchNormComparison result,
      RunBatchNormComparison(train, options, [&](bool batchnorm, const EpochMetrics& m) {
        int& count = batchnorm ? bn_epochs : plain_epochs;
        EXPECT_EQ(m.epoch, ++count);
      }));
  EXPECT_EQ(bn_epochs, 20);
  EXPECT_EQ(plain_epochs, 20);
  ASSERT_EQ(result.batchnorm.size(), 20u);
  ASSERT_EQ(result.plain.size(), 20u);
  EXPECT_EQ(result.weight_std, 0.05);
  EXPECT_GE(result.final_batchnorm_accuracy(), 0.90);
  EXPECT_LE(result.final_plain_accuracy(), 0.20);
  // BatchNorm learns steadily: far above the first epoch by the end.
  EXPECT_GT(result.final_batchnorm_accuracy(), result.batchnorm.front().train_accuracy + 0.5);
}

TEST(BatchNormExperimentTest, UsesOnlyTheFirstTrainSizeRows) {
  ASSERT_OK_AND_ASSIGN(Dataset first, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                         Split::kTrain, 1000));
  ASSERT_OK_AND_ASSIGN(Dataset all, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                       Split::kTrain, 2000));
  BatchNormExperimentOptions options;
  options.epochs = 2;
  ASSERT_OK_AND_ASSIGN(BatchNormComparison a, RunBatchNormComparison(first, options));
  ASSERT_OK_AND_ASSIGN(BatchNormComparison b, RunBatchNormComparison(all, options));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a.batchnorm[i].train_accuracy, b.batchnorm[i].train_accuracy);
    EXPECT_EQ(a.plain[i].train_loss, b.plain[i].train_loss);
  }
}

TEST(BatchNormExperimentTest, ArmsDifferOnlyInBatchNorm) {
  BatchNormExperimentOptions options;
  options.weight_std = 0.3;
  const NetworkConfig bn = BatchNormExperimentNetwork(options, true, 784, 10);
  const NetworkConfig plain = BatchNormExperimentNetwork(options, false, 784, 10);
  EXPECT_TRUE(bn.use_batchnorm);
  EXPECT_FALSE(plain.use_batchnorm);
  for (const NetworkConfig* c : {&bn, &plain}) {
    EXPECT_EQ(c->input_size, 784);
    EXPECT_EQ(c->hidden_sizes, std::vector<int>(5, 100));
    EXPECT_EQ(c->output_size, 10);
    EXPECT_EQ(c->activation, Activation::kRelu);
    EXPECT_EQ(c->weight_init.kind, WeightInit::Kind::kStd);
    EXPECT_EQ(c->weight_init.std, 0.3);
    EXPECT_EQ(c->dropout_ratio, 0.0);
    EXPECT_EQ(c->weight_decay_lambda, 0.0);
  }
}

TEST(BatchNormExperimentTest, BookWeightStdsAreLogspace0ToMinus4) {
  const std::vector<double> stds = BookWeightStds();
  ASSERT_EQ(stds.size(), 16u);
  EXPECT_DOUBLE_EQ(stds.front(), 1.0);
  EXPECT_NEAR(stds.back(), 1e-4, 1e-16);
  for (size_t i = 1; i < stds.size(); ++i) {
    EXPECT_NEAR(std::log10(stds[i - 1]) - std::log10(stds[i]), 4.0 / 15.0, 1e-12);
  }
}

TEST(BatchNormExperimentTest, InvalidOptionsAndCancellation) {
  ASSERT_OK_AND_ASSIGN(Dataset train, LoadBuiltinDataset(DefaultDataDir(), "mnist-digits",
                                                         Split::kTrain, 200));
  BatchNormExperimentOptions options;
  options.weight_std = -1;
  EXPECT_THAT(RunBatchNormComparison(train, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options = BatchNormExperimentOptions();
  options.train_size = 0;
  EXPECT_THAT(RunBatchNormComparison(train, options),
              StatusIs(absl::StatusCode::kInvalidArgument));
  options = BatchNormExperimentOptions();
  EXPECT_THAT(RunBatchNormComparison(train, options, nullptr, [] { return true; }),
              StatusIs(absl::StatusCode::kCancelled));
}

}  // namespace
}  // namespace bnserve
