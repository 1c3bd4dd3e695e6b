// InspectNetwork: the layer outputs of a tiny network against an independent
// double-precision forward pass written here from the network's tensors (both
// BatchNorm modes, dropout's inference scaling), that the running statistics
// never change, and the book's activation-distribution experiment (section
// 6.2.2) as a property: a 5 x 100 sigmoid network on N(0, 1) rows saturates
// with weight std 1 and collapses to 0.5 with std 0.01, and with BatchNorm
// the normalized outputs have mean 0 and std 1 in every layer.
#include "core/network_inspection.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/evaluation.h"
#include "core/network.h"
#include "core/network_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::RandomInput;
using ::bnserve::testing::StatusIs;

// Per hidden layer, the three outputs in double.
struct ReferenceLayer {
  MatrixD affine, batchnorm, activation;
};

MatrixD ToDouble(const Matrix& m) { return m.cast<double>(); }

double Activate(Activation activation, double v) {
  switch (activation) {
    case Activation::kRelu:
      return v > 0 ? v : 0;
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-v));
    case Activation::kTanh:
      return std::tanh(v);
  }
  return v;
}

// The book's MultiLayerNetExtend.predict(x, train_flg=False) with plain
// loops, from the exported tensors; batch statistics when `batch_stats`.
std::vector<ReferenceLayer> ReferenceForward(const Network<float>& network, const Matrix& x,
                                             bool batch_stats) {
  const NetworkConfig& config = network.config();
  std::map<std::string, Matrix> t = network.ExportTensors();
  std::vector<ReferenceLayer> layers;
  MatrixD h = ToDouble(x);
  for (size_t l = 0; l < config.hidden_sizes.size(); ++l) {
    const std::string k = absl::StrCat(l + 1);
    const MatrixD w = ToDouble(t.at("W" + k));
    const MatrixD b = ToDouble(t.at("b" + k));
    ReferenceLayer out;
    const Eigen::Index rows = h.rows(), units = w.cols();
    out.affine = MatrixD::Zero(rows, units);
    for (Eigen::Index r = 0; r < rows; ++r) {
      for (Eigen::Index u = 0; u < units; ++u) {
        double sum = b(0, u);
        for (Eigen::Index i = 0; i < h.cols(); ++i) sum += h(r, i) * w(i, u);
        out.affine(r, u) = sum;
      }
    }
    MatrixD z = out.affine;
    if (config.use_batchnorm) {
      const MatrixD gamma = ToDouble(t.at("gamma" + k)), beta = ToDouble(t.at("beta" + k));
      MatrixD mean = ToDouble(t.at("running_mean" + k)), var = ToDouble(t.at("running_var" + k));
      if (batch_stats) {
        for (Eigen::Index u = 0; u < units; ++u) {
          double m = 0, v = 0;
          for (Eigen::Index r = 0; r < rows; ++r) m += out.affine(r, u);
          m /= rows;
          for (Eigen::Index r = 0; r < rows; ++r) v += std::pow(out.affine(r, u) - m, 2);
          mean(0, u) = m;
          var(0, u) = v / rows;
        }
      }
      out.batchnorm = MatrixD(rows, units);
      for (Eigen::Index r = 0; r < rows; ++r) {
        for (Eigen::Index u = 0; u < units; ++u) {
          out.batchnorm(r, u) = gamma(0, u) * (out.affine(r, u) - mean(0, u)) /
                                    std::sqrt(var(0, u) + config.bn_eps) +
                                beta(0, u);
        }
      }
      z = out.batchnorm;
    }
    out.activation = z.unaryExpr([&](double v) { return Activate(config.activation, v); });
    h = out.activation * (1.0 - config.dropout_ratio);
    layers.push_back(std::move(out));
  }
  return layers;
}

// What the test expects of a histogram of `values` over [min, max] in `bins`.
void ExpectHistogramOf(const MatrixD& values, const Histogram& h, int bins,
                       const std::string& what) {
  SCOPED_TRACE(what);
  const double n = static_cast<double>(values.size());
  const double mean = values.sum() / n;
  const double std = std::sqrt((values.array() - mean).square().sum() / n);
  ASSERT_EQ(h.count, values.size());
  EXPECT_NEAR(h.mean, mean, 1e-5 * (1 + std::abs(mean)));
  EXPECT_NEAR(h.std, std, 1e-5 * (1 + std));
  EXPECT_NEAR(h.min, values.minCoeff(), 1e-5 * (1 + std::abs(values.minCoeff())));
  EXPECT_NEAR(h.max, values.maxCoeff(), 1e-5 * (1 + std::abs(values.maxCoeff())));
  std::vector<int64_t> counts(bins, 0);
  const double width = (h.max - h.min) / bins;
  for (Eigen::Index i = 0; i < values.size(); ++i) {
    int bin = width > 0 ? static_cast<int>(std::floor((values.data()[i] - h.min) / width)) : 0;
    ++counts[std::min(std::max(bin, 0), bins - 1)];
  }
  EXPECT_EQ(h.counts, counts);
}

// A tiny network whose BatchNorm parameters and running statistics are not
// their initial values, so that both modes are tested for real.
Network<float> TinyNetwork(bool batchnorm, double dropout) {
  NetworkConfig config;
  config.input_size = 4;
  config.hidden_sizes = {5, 3};
  config.output_size = 2;
  config.activation = Activation::kTanh;
  config.weight_init.std = 0.7;
  config.use_batchnorm = batchnorm;
  config.dropout_ratio = dropout;
  Network<float> network = Network<float>::Create(config, 5).value();
  std::map<std::string, Matrix> tensors = network.ExportTensors();
  for (auto& [name, tensor] : tensors) {
    const Matrix noise = RandomInput(static_cast<int>(tensor.rows()),
                                     static_cast<int>(tensor.cols()), name.size() * 7 + 1);
    if (name.rfind("b", 0) == 0 || name.rfind("beta", 0) == 0 ||
        name.rfind("running_mean", 0) == 0) {
      tensor = noise.array() - 0.5f;
    } else if (name.rfind("gamma", 0) == 0 || name.rfind("running_var", 0) == 0) {
      tensor = noise.array() + 0.5f;
    }
  }
  EXPECT_OK(network.ImportTensors(tensors));
  return network;
}

class InspectNetworkTest : public ::testing::TestWithParam<BnMode> {};

TEST_P(InspectNetworkTest, LayerOutputsMatchAnIndependentForwardPass) {
  const BnMode mode = GetParam();
  const Matrix x = RandomInput(9, 4, 3);
  HistogramOptions options;
  options.bins = 4;
  for (const bool batchnorm : {true, false}) {
    for (const double dropout : {0.0, 0.5}) {
      SCOPED_TRACE(absl::StrCat("batchnorm ", batchnorm, " dropout ", dropout));
      const Network<float> network = TinyNetwork(batchnorm, dropout);
      ASSERT_OK_AND_ASSIGN(std::vector<LayerHistograms> layers,
                           InspectNetwork(network, x, mode, options));
      const std::vector<ReferenceLayer> expected =
          ReferenceForward(network, x, mode == BnMode::kBatchStatistics);
      ASSERT_EQ(layers.size(), 2u);
      for (size_t l = 0; l < layers.size(); ++l) {
        EXPECT_EQ(layers[l].layer, static_cast<int>(l) + 1);
        ExpectHistogramOf(expected[l].affine, layers[l].affine_output, 4, "affine");
        ASSERT_EQ(layers[l].batchnorm_output.has_value(), batchnorm);
        if (batchnorm) {
          ExpectHistogramOf(expected[l].batchnorm, *layers[l].batchnorm_output, 4, "batchnorm");
        }
        ExpectHistogramOf(expected[l].activation, layers[l].activation_output, 4, "activation");
      }
    }
  }
}

TEST_P(InspectNetworkTest, NeverChangesTheNetworksTensors) {
  const Network<float> network = TinyNetwork(true, 0.0);
  const std::map<std::string, Matrix> before = network.ExportTensors();
  ASSERT_OK(InspectNetwork(network, RandomInput(20, 4, 8), GetParam(), HistogramOptions())
                .status());
  const std::map<std::string, Matrix> after = network.ExportTensors();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, tensor] : before) {
    EXPECT_TRUE(tensor == after.at(name)) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, InspectNetworkTest,
                         ::testing::Values(BnMode::kInference, BnMode::kBatchStatistics));

TEST(InspectNetworkErrorsTest, BadInputAndOptionsAreInvalidArgument) {
  const Network<float> network = TinyNetwork(true, 0.0);
  EXPECT_THAT(InspectNetwork(network, RandomInput(3, 5, 1), BnMode::kInference, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      InspectNetwork(network, RandomInput(1, 4, 1), BnMode::kBatchStatistics, {}).status(),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(InspectNetwork(network, RandomInput(1, 4, 1), BnMode::kInference, {}).status());
  HistogramOptions bad;
  bad.bins = 0;
  EXPECT_THAT(InspectNetwork(network, RandomInput(3, 4, 1), BnMode::kInference, bad).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RandomNormalRowsTest, IsSeededAndStandardNormal) {
  const Matrix a = RandomNormalRows(1000, 100, 7);
  EXPECT_TRUE(a == RandomNormalRows(1000, 100, 7));
  EXPECT_FALSE(a == RandomNormalRows(1000, 100, 8));
  const double mean = a.cast<double>().mean();
  const double std = std::sqrt((a.cast<double>().array() - mean).square().mean());
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(std, 1.0, 0.01);
}

// The book's figure 6-10 to 6-13 setting: 1000 rows of N(0, 1), five hidden
// layers of 100 sigmoid units, no bias.
NetworkConfig BookConfig(double weight_std, bool batchnorm) {
  NetworkConfig config;
  config.input_size = 100;
  config.hidden_sizes = {100, 100, 100, 100, 100};
  config.output_size = 10;
  config.activation = Activation::kSigmoid;
  config.weight_init.kind = WeightInit::Kind::kStd;
  config.weight_init.std = weight_std;
  config.use_batchnorm = batchnorm;
  return config;
}

HistogramOptions UnitRange() {
  HistogramOptions options;
  options.bins = 30;
  options.range = HistogramRange{0.0, 1.0};
  return options;
}

int64_t Sum(const std::vector<int64_t>& counts, int from, int to) {
  int64_t sum = 0;
  for (int i = from; i < to; ++i) sum += counts[i];
  return sum;
}

TEST(BookExperimentTest, WeightStdOneSaturatesTheSigmoidsNearZeroAndOne) {
  ASSERT_OK_AND_ASSIGN(Network<float> network, Network<float>::Create(BookConfig(1.0, false), 1));
  ASSERT_OK_AND_ASSIGN(
      std::vector<LayerHistograms> layers,
      InspectNetwork(network, RandomNormalRows(1000, 100, 2), BnMode::kInference, UnitRange()));
  ASSERT_EQ(layers.size(), 5u);
  for (const LayerHistograms& layer : layers) {
    SCOPED_TRACE(absl::StrCat("layer ", layer.layer));
    const Histogram& a = layer.activation_output;
    EXPECT_EQ(a.below + a.above, 0);
    // Most of the mass in the outer bins (the first and last three of 30:
    // below 0.1 and above 0.9), little in the middle.
    const int64_t outer = Sum(a.counts, 0, 3) + Sum(a.counts, 27, 30);
    EXPECT_GT(outer, a.count / 2) << outer << " of " << a.count;
    EXPECT_LT(Sum(a.counts, 12, 18), a.count / 10);
    EXPECT_GT(a.std, 0.3);
  }
}

TEST(BookExperimentTest, WeightStdHundredthCollapsesTheSigmoidsToOneHalf) {
  ASSERT_OK_AND_ASSIGN(Network<float> network,
                       Network<float>::Create(BookConfig(0.01, false), 1));
  ASSERT_OK_AND_ASSIGN(
      std::vector<LayerHistograms> layers,
      InspectNetwork(network, RandomNormalRows(1000, 100, 2), BnMode::kInference, UnitRange()));
  for (const LayerHistograms& layer : layers) {
    SCOPED_TRACE(absl::StrCat("layer ", layer.layer));
    const Histogram& a = layer.activation_output;
    // Bins 12 to 17 are [0.4, 0.6): nearly everything (the first layer's
    // sigmoid of N(0, 0.1^2) has std 0.025), the outer bins nothing.
    EXPECT_GT(Sum(a.counts, 12, 18), a.count * 99 / 100);
    EXPECT_EQ(Sum(a.counts, 0, 3) + Sum(a.counts, 27, 30), 0);
    EXPECT_NEAR(a.mean, 0.5, 0.01);
    EXPECT_LT(a.std, 0.05);
  }
}

TEST(BookExperimentTest, BatchNormOutputsHaveMeanZeroAndStdOneInEveryLayer) {
  for (const double weight_std : {1.0, 0.01}) {
    SCOPED_TRACE(absl::StrCat("weight std ", weight_std));
    ASSERT_OK_AND_ASSIGN(Network<float> network,
                         Network<float>::Create(BookConfig(weight_std, true), 1));
    const std::map<std::string, Matrix> before = network.ExportTensors();
    ASSERT_OK_AND_ASSIGN(std::vector<LayerHistograms> layers,
                         InspectNetwork(network, RandomNormalRows(1000, 100, 2),
                                        BnMode::kBatchStatistics, HistogramOptions()));
    ASSERT_EQ(layers.size(), 5u);
    for (const LayerHistograms& layer : layers) {
      SCOPED_TRACE(absl::StrCat("layer ", layer.layer));
      ASSERT_TRUE(layer.batchnorm_output.has_value());
      EXPECT_NEAR(layer.batchnorm_output->mean, 0.0, 1e-3);
      EXPECT_NEAR(layer.batchnorm_output->std, 1.0, 1e-2);
      // The sigmoid of N(0, 1): spread out, neither saturated nor collapsed.
      EXPECT_NEAR(layer.activation_output.mean, 0.5, 0.02);
      EXPECT_GT(layer.activation_output.std, 0.15);
    }
    // The batch statistics were used, never stored.
    const std::map<std::string, Matrix> after = network.ExportTensors();
    for (int k = 1; k <= 5; ++k) {
      for (const char* name : {"running_mean", "running_var"}) {
        const std::string key = absl::StrCat(name, k);
        EXPECT_TRUE(before.at(key) == after.at(key)) << key;
      }
    }
  }
}

}  // namespace
}  // namespace bnserve
