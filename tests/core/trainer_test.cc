#include "core/trainer.h"

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "core/dataset.h"
#include "core/eigen_types.h"
#include "core/network.h"
#include "core/network_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOk;
using ::bnserve::testing::StatusIs;

// Three Gaussian blobs in 8 dimensions, well separated: class c is centred at
// 2 * e_c. Deterministic for a seed.
Dataset Blobs(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  Dataset data;
  data.num_classes = 3;
  data.name = "blobs";
  data.features.resize(n, 8);
  data.labels.resize(n);
  for (int i = 0; i < n; ++i) {
    const int c = i % 3;
    data.labels(i) = c;
    for (int j = 0; j < 8; ++j) data.features(i, j) = noise(rng) + (j == c ? 2.0f : 0.0f);
  }
  return data;
}

NetworkConfig SmallConfig(bool batchnorm) {
  NetworkConfig config;
  config.input_size = 8;
  config.hidden_sizes = {16, 16};
  config.output_size = 3;
  config.use_batchnorm = batchnorm;
  config.weight_init.kind = WeightInit::Kind::kHe;
  return config;
}

TrainerOptions SmallOptions() {
  TrainerOptions options;
  options.epochs = 5;
  options.batch_size = 20;
  options.seed = 7;
  options.optimizer = DefaultOptimizerConfig(OptimizerType::kSgd);
  options.optimizer.learning_rate = 0.1;
  return options;
}

// Trains a fresh network (network seed 1) and returns its tensors.
std::map<std::string, Matrix> TrainedTensors(const NetworkConfig& config,
                                             const TrainerOptions& options,
                                             const Dataset& train) {
  absl::StatusOr<Network<float>> net = Network<float>::Create(config, 1);
  EXPECT_THAT(net, IsOk());
  if (!net.ok()) return {};
  EXPECT_THAT(Train(&*net, train, Dataset(), options, nullptr, nullptr), IsOk());
  return net->ExportTensors();
}

TEST(TrainerTest, SameSeedGivesBitIdenticalTensors) {
  const Dataset train = Blobs(150, 3);
  NetworkConfig config = SmallConfig(true);
  config.dropout_ratio = 0.2;  // the masks come from the trainer's generator too
  const std::map<std::string, Matrix> a = TrainedTensors(config, SmallOptions(), train);
  const std::map<std::string, Matrix> b = TrainedTensors(config, SmallOptions(), train);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    ASSERT_EQ(b.count(name), 1u) << name;
    // Bitwise: == on floats also holds for equal bit patterns (no NaNs here).
    EXPECT_TRUE((tensor.array() == b.at(name).array()).all()) << name;
  }
  // Training changed the weights at all.
  ASSERT_OK_AND_ASSIGN(Network<float> fresh, Network<float>::Create(config, 1));
  EXPECT_FALSE((fresh.ExportTensors().at("W1").array() == a.at("W1").array()).all());
}

TEST(TrainerTest, DifferentSeedGivesDifferentTensors) {
  const Dataset train = Blobs(150, 3);
  const NetworkConfig config = SmallConfig(true);
  TrainerOptions other = SmallOptions();
  other.seed = 8;
  const std::map<std::string, Matrix> a = TrainedTensors(config, SmallOptions(), train);
  const std::map<std::string, Matrix> b = TrainedTensors(config, other, train);
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  for (const std::string name : {"W1", "W3", "running_mean1"}) {
    EXPECT_FALSE((a.at(name).array() == b.at(name).array()).all()) << name;
  }
}

TEST(TrainerTest, CallbackPerEpochWithIncreasingNumbers) {
  const Dataset train = Blobs(150, 3);
  const Dataset validation = Blobs(60, 4);
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(true), 1));
  std::vector<EpochMetrics> seen;
  ASSERT_OK_AND_ASSIGN(
      std::vector<EpochMetrics> history,
      Train(&net, train, validation, SmallOptions(),
            [&](const EpochMetrics& m) { seen.push_back(m); }, nullptr));
  ASSERT_EQ(history.size(), 5u);
  ASSERT_EQ(seen.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(seen[i].epoch, i + 1);
    EXPECT_EQ(history[i].epoch, i + 1);
    EXPECT_EQ(seen[i].train_loss, history[i].train_loss);
    EXPECT_GT(seen[i].seconds, 0.0);
    EXPECT_GE(seen[i].test_accuracy, 0.0);
    EXPECT_LE(seen[i].test_accuracy, 1.0);
  }
  // The reported accuracies are those of the network in inference mode.
  ASSERT_OK_AND_ASSIGN(double train_acc,
                       net.Accuracy(train.features, train.labels, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(double test_acc, net.Accuracy(validation.features, validation.labels,
                                                     BnMode::kInference));
  EXPECT_EQ(history.back().train_accuracy, train_acc);
  EXPECT_EQ(history.back().test_accuracy, test_acc);
}

TEST(TrainerTest, NoValidationSetReportsZeroTestAccuracy) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(false), 1));
  TrainerOptions options = SmallOptions();
  options.epochs = 1;
  ASSERT_OK_AND_ASSIGN(std::vector<EpochMetrics> history,
                       Train(&net, Blobs(60, 3), Dataset(), options, nullptr, nullptr));
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].test_accuracy, 0.0);
  EXPECT_GT(history[0].train_accuracy, 0.0);
}

TEST(TrainerTest, CancellationStopsBeforeTheNextIteration) {
  // 150 samples / batch 20 = 7 iterations per epoch (the last 10 are dropped).
  const Dataset train = Blobs(150, 3);
  const TrainerOptions options = SmallOptions();
  for (int stop_after : {0, 3, 7, 10}) {
    ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(true), 1));
    int calls = 0;
    int epochs_done = 0;
    absl::StatusOr<std::vector<EpochMetrics>> result = Train(
        &net, train, Dataset(), options, [&](const EpochMetrics&) { ++epochs_done; },
        [&] { return ++calls > stop_after; });
    EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled)) << stop_after;
    // Checked before every iteration: stop_after iterations ran, then one check said stop.
    EXPECT_EQ(calls, stop_after + 1);
    EXPECT_EQ(epochs_done, stop_after / 7) << stop_after;
  }
}

TEST(TrainerTest, CancelledAtAnEpochBoundaryLeavesExactlyThoseEpochsApplied) {
  const Dataset train = Blobs(150, 3);
  TrainerOptions two_epochs = SmallOptions();
  two_epochs.epochs = 2;
  const std::map<std::string, Matrix> expected =
      TrainedTensors(SmallConfig(true), two_epochs, train);

  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(true), 1));
  int calls = 0;
  EXPECT_THAT(Train(&net, train, Dataset(), SmallOptions(), nullptr,
                    [&] { return ++calls > 2 * 7; }),
              StatusIs(absl::StatusCode::kCancelled));
  const std::map<std::string, Matrix> actual = net.ExportTensors();
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE((tensor.array() == actual.at(name).array()).all()) << name;
  }
}

TEST(TrainerTest, LossDecreasesOnSeparableData) {
  const Dataset train = Blobs(300, 5);
  const Dataset validation = Blobs(90, 6);
  for (bool batchnorm : {true, false}) {
    ASSERT_OK_AND_ASSIGN(Network<float> net,
                         Network<float>::Create(SmallConfig(batchnorm), 2));
    TrainerOptions options = SmallOptions();
    options.epochs = 10;
    ASSERT_OK_AND_ASSIGN(std::vector<EpochMetrics> history,
                         Train(&net, train, validation, options, nullptr, nullptr));
    ASSERT_EQ(history.size(), 10u);
    EXPECT_LT(history.back().train_loss, 0.5 * history.front().train_loss)
        << "batchnorm=" << batchnorm << " first " << history.front().train_loss << " last "
        << history.back().train_loss;
    EXPECT_GE(history.back().train_accuracy, 0.95) << "batchnorm=" << batchnorm;
    EXPECT_GE(history.back().test_accuracy, 0.95) << "batchnorm=" << batchnorm;
  }
}

TEST(TrainerTest, BatchLargerThanTrainingSetUsesAllOfIt) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(true), 1));
  TrainerOptions options = SmallOptions();
  options.batch_size = 1000;
  options.epochs = 2;
  int calls = 0;
  ASSERT_OK_AND_ASSIGN(std::vector<EpochMetrics> history,
                       Train(&net, Blobs(30, 3), Dataset(), options, nullptr, [&] {
                         ++calls;
                         return false;
                       }));
  EXPECT_EQ(history.size(), 2u);
  EXPECT_EQ(calls, 2);  // one iteration per epoch
}

TEST(TrainerTest, RowsPerEpochAreTheRowsOfTheIterationsTrainRuns) {
  EXPECT_EQ(RowsPerEpoch(20, 150), 140);   // 7 full batches; 10 rows left out
  EXPECT_EQ(RowsPerEpoch(20, 160), 160);
  EXPECT_EQ(RowsPerEpoch(1000, 30), 30);   // one batch of the whole set
  EXPECT_EQ(RowsPerEpoch(20, 19), 19);
  // Train runs RowsPerEpoch / EffectiveBatchSize iterations per epoch.
  for (const auto& [rows, batch] : {std::pair{150, 20}, std::pair{30, 1000}, std::pair{41, 8}}) {
    ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(true), 1));
    TrainerOptions options = SmallOptions();
    options.batch_size = batch;
    options.epochs = 1;
    int iterations = 0;
    ASSERT_OK(Train(&net, Blobs(rows, 3), Dataset(), options, nullptr, [&] {
                ++iterations;
                return false;
              }).status());
    EXPECT_EQ(int64_t{iterations} * EffectiveBatchSize(batch, rows), RowsPerEpoch(batch, rows))
        << rows << " rows, batch " << batch;
  }
}

TEST(TrainerTest, TrainingMemoryEstimateCoversParametersBatchAndEvaluation) {
  const NetworkConfig seed_net;  // 784-100x5-10 with BN: 121,910 parameters
  // Per batch row: 784 features + 8 buffers * 500 hidden units + 3 * 10
  // classes, and the products' shared packing buffers, sized by the largest
  // product's bound: the first layer's x * W, 784 * (batch + 100).
  const int64_t per_row_bytes = (784 + 8 * 500 + 3 * 10 + 784) * 4;
  EXPECT_EQ(EstimateTrainingBytes(seed_net, 200) - EstimateTrainingBytes(seed_net, 100),
            100 * per_row_bytes);
  // Batch-independent: 4 copies of the parameters, 3 x 8192 x 100 for
  // evaluation, 784 * 100 of packing buffers.
  EXPECT_EQ(EstimateTrainingBytes(seed_net, 0), (4 * 121910 + 3 * 8192 * 100 + 78400) * 4);
  // The largest valid network with a whole fashion-mnist batch: far beyond
  // what a server should accept (tens of GB).
  NetworkConfig wide;
  wide.hidden_sizes.assign(4, 2000);
  ASSERT_THAT(ValidateNetworkConfig(wide), IsOk());
  EXPECT_GT(EstimateTrainingBytes(wide, 60000), int64_t{10} << 30);
}

TEST(TrainerTest, InvalidOptionsAndData) {
  const NetworkConfig bn = SmallConfig(true);
  EXPECT_OK(ValidateTrainerOptions(SmallOptions(), bn));
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  TrainerOptions options = SmallOptions();
  options.epochs = 0;
  EXPECT_THAT(ValidateTrainerOptions(options, bn), StatusIs(kInvalid));
  options = SmallOptions();
  options.batch_size = 0;
  EXPECT_THAT(ValidateTrainerOptions(options, bn), StatusIs(kInvalid));
  options.batch_size = 1;
  EXPECT_THAT(ValidateTrainerOptions(options, bn), StatusIs(kInvalid));
  EXPECT_OK(ValidateTrainerOptions(options, SmallConfig(false)));
  options = SmallOptions();
  options.optimizer.learning_rate = 0;
  EXPECT_THAT(ValidateTrainerOptions(options, bn), StatusIs(kInvalid));

  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(bn, 1));
  const std::map<std::string, Matrix> before = net.ExportTensors();
  const Dataset good = Blobs(60, 3);
  EXPECT_THAT(Train(&net, good, Dataset(), options, nullptr, nullptr), StatusIs(kInvalid));
  EXPECT_THAT(Train(nullptr, good, Dataset(), SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  EXPECT_THAT(Train(&net, Dataset(), Dataset(), SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  Dataset wide = good;
  wide.features = Matrix::Zero(60, 9);
  EXPECT_THAT(Train(&net, wide, Dataset(), SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  EXPECT_THAT(Train(&net, good, wide, SmallOptions(), nullptr, nullptr), StatusIs(kInvalid));
  Dataset bad_label = good;
  bad_label.labels(59) = 3;
  EXPECT_THAT(Train(&net, bad_label, Dataset(), SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  EXPECT_THAT(Train(&net, good, bad_label, SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  Dataset short_labels = good;
  short_labels.labels.conservativeResize(50);
  EXPECT_THAT(Train(&net, short_labels, Dataset(), SmallOptions(), nullptr, nullptr),
              StatusIs(kInvalid));
  // Rejected up front: the network is untouched.
  const std::map<std::string, Matrix> after = net.ExportTensors();
  for (const auto& [name, tensor] : before) {
    EXPECT_TRUE((tensor.array() == after.at(name).array()).all()) << name;
  }
}

}  // namespace
}  // namespace bnserve
