// The whole network's analytic gradient (every W, b, gamma, beta) against
// central finite differences of Network::Loss in double precision.
//
// ComputeGradients runs BatchNorm in train mode; Loss with
// BnMode::kBatchStatistics evaluates the same function (batch statistics,
// no running-statistics update, no dropout as dropout_ratio == 0), so the
// finite differences differentiate exactly what the backward pass does.
#include <cctype>
#include <random>
#include <string>
#include <tuple>

#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/network.h"
#include "core/network_config.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::GradientsMatch;
using ::bnserve::testing::NumericalGradient;

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;

NetworkConfig SmallConfig(bool batchnorm, Activation activation, double lambda) {
  NetworkConfig config;
  config.input_size = 6;
  config.hidden_sizes = {5, 4, 3};
  config.output_size = 4;
  config.activation = activation;
  config.use_batchnorm = batchnorm;
  config.weight_init.kind = WeightInit::Kind::kStd;
  // Large enough that the scores, and so the gradients, are not tiny.
  config.weight_init.std = 0.8;
  config.weight_decay_lambda = lambda;
  return config;
}

void CheckGradients(const NetworkConfig& config, uint64_t seed) {
  ASSERT_OK_AND_ASSIGN(Network<double> net, Network<double>::Create(config, seed));
  const int batch = 7;
  std::mt19937_64 rng(seed + 1000);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  MatrixD x(batch, config.input_size);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = uniform(rng);
  Labels labels(batch);
  for (int i = 0; i < batch; ++i) labels(i) = i % config.output_size;
  // Give biases and BN parameters non-default values so that their gradients
  // are exercised away from the initial point.
  for (ParameterRef<double>& p : net.TrainableParameters()) {
    if (p.name[0] != 'W') {
      for (Eigen::Index i = 0; i < p.value->size(); ++i) {
        p.value->data()[i] += 0.3 * uniform(rng);
      }
    }
  }

  ASSERT_OK_AND_ASSIGN(const double loss, net.ComputeGradients(x, labels, nullptr));
  ASSERT_OK_AND_ASSIGN(const double same_loss,
                       net.Loss(x, labels, BnMode::kBatchStatistics));
  EXPECT_EQ(loss, same_loss) << "the finite differences would not see the trained function";

  std::vector<ParameterRef<double>> params = net.TrainableParameters();
  const int expected_count = 2 * (static_cast<int>(config.hidden_sizes.size()) + 1) +
                             (config.use_batchnorm ? 2 * config.hidden_sizes.size() : 0);
  ASSERT_EQ(static_cast<int>(params.size()), expected_count);
  const std::string final_bias = "b" + std::to_string(config.hidden_sizes.size() + 1);
  for (ParameterRef<double>& p : params) {
    const MatrixD analytic = *p.grad;
    auto loss_fn = [&] {
      absl::StatusOr<double> l = net.Loss(x, labels, BnMode::kBatchStatistics);
      EXPECT_TRUE(l.ok()) << l.status();
      return l.value_or(0.0);
    };
    const MatrixD numeric = NumericalGradient(loss_fn, p.value, kStep);
    const bool is_bias = p.name.size() > 1 && p.name[0] == 'b' && std::isdigit(p.name[1]);
    if (config.use_batchnorm && is_bias && p.name != final_bias) {
      // BatchNorm subtracts the batch mean, so the bias of the Affine in front
      // of it cannot change the loss: its gradient is exactly 0 and the finite
      // difference is pure rounding noise (~1e-11), where a relative error
      // means nothing. Check both are zero instead.
      EXPECT_LE(analytic.cwiseAbs().maxCoeff(), 1e-12) << p.name;
      EXPECT_LE(numeric.cwiseAbs().maxCoeff(), 1e-9) << p.name;
      continue;
    }
    EXPECT_TRUE(GradientsMatch(analytic, numeric, kTolerance, p.name));
    // Guard against a vacuous pass: every tensor has some real gradient.
    EXPECT_GT(numeric.cwiseAbs().maxCoeff(), 1e-4) << p.name;
  }
}

class NetworkGradientTest
    : public ::testing::TestWithParam<std::tuple<bool, Activation>> {};

// For ReLU, a finite difference across a kink would disagree with the
// analytic subgradient; with these fixed seeds no pre-activation lies within
// the step of 0 (the test is deterministic, so this holds every run).
TEST_P(NetworkGradientTest, MatchesFiniteDifferences) {
  const auto [batchnorm, activation] = GetParam();
  CheckGradients(SmallConfig(batchnorm, activation, 0.0), 42);
}

INSTANTIATE_TEST_SUITE_P(
    AllCombinations, NetworkGradientTest,
    ::testing::Combine(::testing::Bool(),
                       ::testing::Values(Activation::kRelu, Activation::kSigmoid,
                                         Activation::kTanh)),
    [](const ::testing::TestParamInfo<std::tuple<bool, Activation>>& info) {
      return std::string(std::get<0>(info.param) ? "Bn" : "NoBn") + "_" +
             ActivationName(std::get<1>(info.param));
    });

TEST(NetworkGradientWeightDecayTest, MatchesFiniteDifferences) {
  CheckGradients(SmallConfig(true, Activation::kTanh, 0.1), 7);
  CheckGradients(SmallConfig(false, Activation::kRelu, 0.05), 8);
}

TEST(NetworkGradientWeightDecayTest, DecayAddsHalfLambdaSumOfSquares) {
  NetworkConfig config = SmallConfig(true, Activation::kRelu, 0.0);
  ASSERT_OK_AND_ASSIGN(Network<double> plain, Network<double>::Create(config, 3));
  config.weight_decay_lambda = 0.25;
  ASSERT_OK_AND_ASSIGN(Network<double> decayed, Network<double>::Create(config, 3));
  MatrixD x = MatrixD::Ones(3, 6);
  x(1, 2) = -1.0;
  Labels labels(3);
  labels << 0, 1, 2;
  double sum_sq = 0.0;
  for (const auto& [name, tensor] : plain.ExportTensors()) {
    if (name[0] == 'W') sum_sq += tensor.squaredNorm();
  }
  ASSERT_OK_AND_ASSIGN(double l0, plain.Loss(x, labels, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(double l1, decayed.Loss(x, labels, BnMode::kInference));
  EXPECT_NEAR(l1 - l0, 0.5 * 0.25 * sum_sq, 1e-12);
}

}  // namespace
}  // namespace bnserve
