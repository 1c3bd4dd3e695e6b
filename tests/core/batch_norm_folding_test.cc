// FoldBatchNorm: the folded network's structure, its INFERENCE-mode answers
// against the unfolded network's (double precision where it is a numerics
// check: seed network trained a little and with perturbed statistics,
// sigmoid / tanh networks with extreme gammas and tiny variances), against
// the formula evaluated independently, batch independence, and its errors.
#include "core/batch_norm_folding.h"

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/bn_mode.h"
#include "core/eigen_types.h"
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

NetworkConfig SeedConfig() {
  NetworkConfig config;  // 784-100x5-10, ReLU, BatchNorm
  config.weight_init.kind = WeightInit::Kind::kHe;
  return config;
}

// Plain SGD steps on random digits-shaped data: every tensor, the running
// statistics included, moves away from its initial value.
template <typename T>
void TrainALittle(Network<T>* net, int steps, uint64_t seed) {
  const NetworkConfig& config = net->config();
  std::mt19937_64 rng(seed);
  for (int step = 0; step < steps; ++step) {
    const MatrixT<T> x = RandomInput(100, config.input_size, seed + step).cast<T>();
    const Labels labels = RandomLabels(100, config.output_size, seed + step);
    ASSERT_OK(net->ComputeGradients(x, labels, &rng).status());
    for (ParameterRef<T>& p : net->TrainableParameters()) *p.value -= T(0.05) * *p.grad;
  }
}

template <typename T>
double MaxAbsDiff(const MatrixT<T>& a, const MatrixT<T>& b) {
  return (a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff();
}

// Max abs difference of the INFERENCE probabilities of `net` and its fold.
template <typename T>
double FoldError(const Network<T>& net, const MatrixT<T>& x) {
  absl::StatusOr<Network<T>> folded = FoldBatchNorm(net);
  EXPECT_OK(folded.status());
  if (!folded.ok()) return std::numeric_limits<double>::infinity();
  absl::StatusOr<MatrixT<T>> expected = net.PredictProbabilities(x, BnMode::kInference);
  absl::StatusOr<MatrixT<T>> actual = folded->PredictProbabilities(x, BnMode::kInference);
  EXPECT_OK(expected.status());
  EXPECT_OK(actual.status());
  if (!expected.ok() || !actual.ok()) return std::numeric_limits<double>::infinity();
  return MaxAbsDiff(*actual, *expected);
}

// Sets every BatchNorm's gamma, beta, running_mean and running_var of `net`
// with draw(layer, tensor name, feature).
template <typename T, typename Draw>
void SetBatchNormTensors(Network<T>* net, Draw&& draw) {
  std::map<std::string, MatrixT<T>> tensors = net->ExportTensors();
  for (int layer = 1; layer <= static_cast<int>(net->config().hidden_sizes.size()); ++layer) {
    for (const char* name : {"gamma", "beta", "running_mean", "running_var"}) {
      MatrixT<T>& tensor = tensors.at(name + std::to_string(layer));
      for (Eigen::Index j = 0; j < tensor.cols(); ++j) tensor(0, j) = draw(layer, name, j);
    }
  }
  ASSERT_OK(net->ImportTensors(tensors));
}

TEST(BatchNormFoldingTest, FoldedNetworkHasNoBatchNormAndKeepsTheRest) {
  NetworkConfig config = SeedConfig();
  config.hidden_sizes = {6, 4};
  config.input_size = 5;
  config.output_size = 3;
  config.activation = Activation::kTanh;
  config.dropout_ratio = 0.25;
  config.weight_decay_lambda = 0.1;
  config.bn_eps = 1e-5;
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 3));
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(net));
  const NetworkConfig& f = folded.config();
  EXPECT_FALSE(f.use_batchnorm);
  EXPECT_EQ(f.input_size, 5);
  EXPECT_THAT(f.hidden_sizes, ElementsAre(6, 4));
  EXPECT_EQ(f.output_size, 3);
  EXPECT_EQ(f.activation, Activation::kTanh);
  EXPECT_EQ(f.dropout_ratio, 0.25);
  EXPECT_EQ(f.weight_decay_lambda, 0.0);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : folded.ExportTensors()) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("W1", "W2", "W3", "b1", "b2", "b3"));
  // The last Affine has no BatchNorm after it: copied as it is.
  EXPECT_EQ(folded.ExportTensors().at("W3"), net.ExportTensors().at("W3"));
  EXPECT_EQ(folded.ExportTensors().at("b3"), net.ExportTensors().at("b3"));
}

TEST(BatchNormFoldingTest, FoldsEachColumnByTheFormulaInDoubleRoundedOnce) {
  NetworkConfig config = SeedConfig();
  config.input_size = 3;
  config.hidden_sizes = {2};
  config.output_size = 2;
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 5));
  std::map<std::string, Matrix> t = net.ExportTensors();
  t["b1"] << 0.25f, -1.5f;
  t["gamma1"] << 3.0f, -0.5f;
  t["beta1"] << 0.125f, 2.0f;
  t["running_mean1"] << 0.75f, -0.25f;
  t["running_var1"] << 0.04f, 9.0f;
  ASSERT_OK(net.ImportTensors(t));
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(net));
  const std::map<std::string, Matrix> f = folded.ExportTensors();
  for (int j = 0; j < 2; ++j) {
    const double k = static_cast<double>(t["gamma1"](0, j)) /
                     std::sqrt(static_cast<double>(t["running_var1"](0, j)) + 1e-6);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(f.at("W1")(i, j), static_cast<float>(t["W1"](i, j) * k)) << i << "," << j;
    }
    const double b = (static_cast<double>(t["b1"](0, j)) - t["running_mean1"](0, j)) * k +
                     t["beta1"](0, j);
    EXPECT_EQ(f.at("b1")(0, j), static_cast<float>(b)) << j;
  }
}

TEST(BatchNormFoldingTest, SeedNetworkTrainedALittleAgreesWithinTolerance) {
  const Matrix x = RandomInput(256, 784, 77);
  {
    ASSERT_OK_AND_ASSIGN(Network<double> net, Network<double>::Create(SeedConfig(), 1));
    TrainALittle(&net, 20, 10);
    // The statistics really moved: running_var1 is no longer all ones.
    EXPECT_GT((net.ExportTensors().at("running_var1").array() - 1.0).abs().maxCoeff(), 0.1);
    const double error = FoldError(net, MatrixD(x.cast<double>()));
    EXPECT_LE(error, 1e-12) << "double";
  }
  {
    ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SeedConfig(), 1));
    TrainALittle(&net, 20, 10);
    EXPECT_LE(FoldError(net, x), 1e-5) << "float, as served";
  }
}

TEST(BatchNormFoldingTest, SeedNetworkWithPerturbedStatisticsAgreesWithinTolerance) {
  for (uint64_t seed : {1, 2, 3}) {
    ASSERT_OK_AND_ASSIGN(Network<double> net, Network<double>::Create(SeedConfig(), seed));
    // Running statistics of the data (train-mode passes, no update), then
    // every BatchNorm tensor perturbed around them: gamma in [0.5, 1.5], beta
    // in [-0.5, 0.5], the mean moved by up to 0.3 standard deviations, the
    // variance scaled by e^[-1, 1].
    std::mt19937_64 rng(seed);
    for (int pass = 0; pass < 40; ++pass) {
      const MatrixD x = RandomInput(100, 784, 1000 * seed + pass).cast<double>();
      ASSERT_OK(net.ComputeGradients(x, RandomLabels(100, 10, pass), &rng).status());
    }
    const std::map<std::string, MatrixD> calibrated = net.ExportTensors();
    std::uniform_real_distribution<double> uniform(-1.0, 1.0);
    SetBatchNormTensors(&net, [&](int layer, const std::string& name, Eigen::Index j) {
      const std::string n = std::to_string(layer);
      const double var = calibrated.at("running_var" + n)(0, j);
      if (name == "gamma") return 1.0 + 0.5 * uniform(rng);
      if (name == "beta") return 0.5 * uniform(rng);
      if (name == "running_mean") {
        return calibrated.at("running_mean" + n)(0, j) + 0.3 * uniform(rng) * std::sqrt(var);
      }
      return var * std::exp(uniform(rng));
    });
    const MatrixD x = RandomInput(256, 784, 100 + seed).cast<double>();
    ASSERT_OK_AND_ASSIGN(MatrixD p, net.PredictProbabilities(x, BnMode::kInference));
    // Not saturated: the most likely class has well under probability 1.
    EXPECT_LT(p.rowwise().maxCoeff().mean(), 0.99) << "seed " << seed;
    EXPECT_LE(FoldError(net, x), 1e-12) << "seed " << seed;
  }
}

// Sigmoid and tanh networks whose BatchNorms have extreme gammas (1e3, 1e-3,
// negative) and tiny variances (1e-8): k = gamma / sqrt(var + eps) from
// -1e6 to 1e6, and running means near the Affine outputs, so that many
// units sit where the activation is steep rather than saturated.
TEST(BatchNormFoldingTest, ExtremeGammasAndTinyVariancesAgreeInDouble) {
  const std::vector<double> gammas = {1e3, 1e-3, -1e3, -1e-3, -2.0, 1.0};
  const std::vector<double> variances = {1e-8, 1e-8, 1e-8, 1.0, 1e-8, 4.0};
  for (Activation activation : {Activation::kSigmoid, Activation::kTanh}) {
    for (double eps : {1e-6, 1e-9}) {
      NetworkConfig config;
      config.input_size = 20;
      config.hidden_sizes = {12, 12, 12};
      config.output_size = 5;
      config.activation = activation;
      config.weight_init.kind = WeightInit::Kind::kXavier;
      config.bn_eps = eps;
      ASSERT_OK_AND_ASSIGN(Network<double> net, Network<double>::Create(config, 21));
      const MatrixD x = RandomInput(64, 20, 22).cast<double>();
      // running_mean: the first Affine's mean output over the batch (other
      // layers: near their typical activation), so that (a - mean) is small.
      const MatrixD a1 = (x * net.ExportTensors().at("W1")).colwise().mean();
      SetBatchNormTensors(&net, [&](int layer, const std::string& name, Eigen::Index j) {
        const size_t pick = static_cast<size_t>(j + layer) % gammas.size();
        if (name == "gamma") return gammas[pick];
        if (name == "beta") return 0.1 * static_cast<double>(j % 3);
        if (name == "running_mean") return layer == 1 ? a1(0, j) : 0.0;
        return variances[pick];
      });
      ASSERT_OK_AND_ASSIGN(MatrixD p, net.PredictProbabilities(x, BnMode::kInference));
      // Not a degenerate case: the rows do not all get the same answer.
      EXPECT_GT((p.rowwise() - p.row(0)).cwiseAbs().maxCoeff(), 1e-3);
      EXPECT_LE(FoldError(net, x), 1e-5)
          << ActivationName(activation) << " eps " << eps;
    }
  }
}

TEST(BatchNormFoldingTest, DropoutScalingIsKept) {
  NetworkConfig config = SeedConfig();
  config.input_size = 30;
  config.hidden_sizes = {20, 20};
  config.dropout_ratio = 0.4;
  ASSERT_OK_AND_ASSIGN(Network<double> net, Network<double>::Create(config, 8));
  TrainALittle(&net, 5, 30);
  const MatrixD x = RandomInput(50, 30, 31).cast<double>();
  EXPECT_LE(FoldError(net, x), 1e-12);
}

TEST(BatchNormFoldingTest, ARowsAnswerDoesNotDependOnItsBatch) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SeedConfig(), 4));
  TrainALittle(&net, 10, 40);
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(net));
  const Matrix batch = RandomInput(256, 784, 41);
  Matrix other = RandomInput(256, 784, 42);
  ASSERT_OK_AND_ASSIGN(Matrix in_batch, folded.PredictProbabilities(batch, BnMode::kInference));
  for (int row : {0, 7, 255}) {
    ASSERT_OK_AND_ASSIGN(Matrix alone,
                         folded.PredictProbabilities(batch.row(row), BnMode::kInference));
    // A one-row product runs Eigen's matrix-vector kernel, a batch its
    // matrix-matrix kernel: the same sums in another order, so equal to
    // rounding.
    EXPECT_LE(MaxAbsDiff<float>(alone, in_batch.row(row)), 1e-6) << "row " << row;
    // Within batches of 256 with other neighbours, at another position.
    other.row(100) = batch.row(row);
    ASSERT_OK_AND_ASSIGN(Matrix moved, folded.PredictProbabilities(other, BnMode::kInference));
    EXPECT_LE(MaxAbsDiff<float>(moved.row(100), in_batch.row(row)), 1e-6) << "row " << row;
  }
}

TEST(BatchNormFoldingTest, NetworkWithoutBatchNormComesBackEqual) {
  NetworkConfig config = SeedConfig();
  config.use_batchnorm = false;
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 6));
  ASSERT_OK_AND_ASSIGN(Network<float> folded, FoldBatchNorm(net));
  EXPECT_EQ(folded.ExportTensors(), net.ExportTensors());
  const Matrix x = RandomInput(10, 784, 7);
  ASSERT_OK_AND_ASSIGN(Matrix expected, net.PredictProbabilities(x, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(Matrix actual, folded.PredictProbabilities(x, BnMode::kInference));
  EXPECT_EQ(actual, expected);
}

TEST(BatchNormFoldingTest, NonPositiveVarianceOrOverflowIsInvalidArgument) {
  NetworkConfig config = SeedConfig();
  config.input_size = 4;
  config.hidden_sizes = {3, 3};
  config.output_size = 2;
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 9));
  std::map<std::string, Matrix> t = net.ExportTensors();
  t["running_var2"](0, 1) = -1.0f;
  ASSERT_OK(net.ImportTensors(t));
  EXPECT_THAT(FoldBatchNorm(net), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FoldBatchNorm(net).status().message(), HasSubstr("running_var2[1]"));

  t["running_var2"](0, 1) = 1.0f;
  t["gamma1"](0, 0) = 3e38f;  // / sqrt(1 + 1e-6) * W: beyond float
  t["W1"](0, 0) = 10.0f;
  ASSERT_OK(net.ImportTensors(t));
  EXPECT_THAT(FoldBatchNorm(net), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FoldBatchNorm(net).status().message(), HasSubstr("layer 1"));
}

}  // namespace
}  // namespace bnserve
