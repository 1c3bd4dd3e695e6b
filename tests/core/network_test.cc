// Network: creation and validation, tensor names and shapes, import/export,
// seeding, Predict against an independent reference, and which calls may
// touch the running statistics.
#include "core/network.h"

#include <sys/resource.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/network_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/malloc_counter.h"
#include "tests/testing/random_data.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::IsOk;
using ::bnserve::testing::MallocCalls;
using ::bnserve::testing::StatusIs;
using ::testing::ElementsAre;

NetworkConfig SmallConfig() {
  NetworkConfig config;
  config.input_size = 5;
  config.hidden_sizes = {4, 3};
  config.output_size = 3;
  config.weight_init.kind = WeightInit::Kind::kHe;
  return config;
}

using ::bnserve::testing::RandomInput;
using ::bnserve::testing::RandomLabels;

// Trains a few steps with plain SGD so that every tensor, including the
// running statistics, is away from its initial value.
void TrainABit(Network<float>* net, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const NetworkConfig& config = net->config();
  for (int step = 0; step < 5; ++step) {
    const Matrix x = RandomInput(8, config.input_size, seed + step);
    const Labels labels = RandomLabels(8, config.output_size, seed + step);
    ASSERT_OK(net->ComputeGradients(x, labels, &rng).status());
    for (ParameterRef<float>& p : net->TrainableParameters()) *p.value -= 0.1f * *p.grad;
  }
}

TEST(NetworkTest, CreateRejectsInvalidConfigs) {
  std::vector<NetworkConfig> bad(9, SmallConfig());
  bad[0].input_size = 0;
  bad[1].hidden_sizes = {4, -1};
  bad[2].output_size = 0;
  bad[3].dropout_ratio = 1.0;
  bad[4].weight_decay_lambda = -0.1;
  bad[5].bn_momentum = 1.0;
  bad[6].bn_eps = 0.0;
  bad[7].weight_init.kind = WeightInit::Kind::kStd;
  bad[7].weight_init.std = 0.0;
  bad[8].dropout_ratio = std::nan("");
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_THAT(Network<float>::Create(bad[i], 1), StatusIs(absl::StatusCode::kInvalidArgument))
        << "config " << i;
  }
  EXPECT_THAT(Network<float>::Create(SmallConfig(), 1), IsOk());
}

TEST(NetworkTest, TensorNamesAndShapes) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(), 1));
  const std::map<std::string, Matrix> tensors = net.ExportTensors();
  std::map<std::string, std::pair<int, int>> shapes;
  for (const auto& [name, t] : tensors) {
    shapes[name] = {static_cast<int>(t.rows()), static_cast<int>(t.cols())};
  }
  const std::map<std::string, std::pair<int, int>> expected = {
      {"W1", {5, 4}},           {"b1", {1, 4}},          {"gamma1", {1, 4}},
      {"beta1", {1, 4}},        {"running_mean1", {1, 4}}, {"running_var1", {1, 4}},
      {"W2", {4, 3}},           {"b2", {1, 3}},          {"gamma2", {1, 3}},
      {"beta2", {1, 3}},        {"running_mean2", {1, 3}}, {"running_var2", {1, 3}},
      {"W3", {3, 3}},           {"b3", {1, 3}}};
  EXPECT_EQ(shapes, expected);
  EXPECT_EQ(tensors.at("b1"), Matrix::Zero(1, 4));
  EXPECT_EQ(tensors.at("gamma2"), Matrix::Ones(1, 3));
  EXPECT_EQ(tensors.at("running_var1"), Matrix::Ones(1, 4));

  std::vector<std::string> trainable;
  for (const ParameterRef<float>& p : net.TrainableParameters()) {
    trainable.push_back(p.name);
    EXPECT_EQ(p.value->rows(), p.grad->rows()) << p.name;
    EXPECT_EQ(p.value->cols(), p.grad->cols()) << p.name;
  }
  EXPECT_THAT(trainable, ElementsAre("W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2",
                                     "beta2", "W3", "b3"));

  NetworkConfig no_bn = SmallConfig();
  no_bn.use_batchnorm = false;
  ASSERT_OK_AND_ASSIGN(Network<float> plain, Network<float>::Create(no_bn, 1));
  std::vector<std::string> names;
  for (const auto& [name, t] : plain.ExportTensors()) names.push_back(name);
  EXPECT_THAT(names, ElementsAre("W1", "W2", "W3", "b1", "b2", "b3"));
}

TEST(NetworkTest, WeightInitScales) {
  NetworkConfig config;  // the seed network: 784-100x5-10
  config.weight_init.kind = WeightInit::Kind::kHe;
  ASSERT_OK_AND_ASSIGN(Network<float> he, Network<float>::Create(config, 5));
  const Matrix w1 = he.ExportTensors().at("W1");
  const double std_he = std::sqrt(w1.squaredNorm() / w1.size());
  EXPECT_NEAR(std_he, std::sqrt(2.0 / 784), 0.02 * std::sqrt(2.0 / 784));
  config.weight_init.kind = WeightInit::Kind::kStd;
  config.weight_init.std = 0.01;
  ASSERT_OK_AND_ASSIGN(Network<float> fixed, Network<float>::Create(config, 5));
  const Matrix w2 = fixed.ExportTensors().at("W2");
  EXPECT_NEAR(std::sqrt(w2.squaredNorm() / w2.size()), 0.01, 0.001);
}

TEST(NetworkTest, SameSeedSameWeightsDifferentSeedDifferent) {
  ASSERT_OK_AND_ASSIGN(Network<float> a, Network<float>::Create(SmallConfig(), 7));
  ASSERT_OK_AND_ASSIGN(Network<float> b, Network<float>::Create(SmallConfig(), 7));
  ASSERT_OK_AND_ASSIGN(Network<float> c, Network<float>::Create(SmallConfig(), 8));
  const auto ta = a.ExportTensors(), tb = b.ExportTensors(), tc = c.ExportTensors();
  for (const char* name : {"W1", "W2", "W3"}) {
    EXPECT_EQ(ta.at(name), tb.at(name)) << name;
    EXPECT_NE(ta.at(name), tc.at(name)) << name;
  }
}

TEST(NetworkTest, ExportImportRoundTripIsBitExact) {
  NetworkConfig config = SmallConfig();
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 3));
  TrainABit(&net, 100);
  const std::map<std::string, Matrix> exported = net.ExportTensors();

  ASSERT_OK_AND_ASSIGN(Network<float> copy, Network<float>::FromTensors(config, exported));
  const std::map<std::string, Matrix> again = copy.ExportTensors();
  ASSERT_EQ(again.size(), exported.size());
  for (const auto& [name, t] : exported) {
    ASSERT_EQ(again.at(name).size(), t.size()) << name;
    EXPECT_EQ(std::memcmp(again.at(name).data(), t.data(), t.size() * sizeof(float)), 0)
        << name;
  }
  const Matrix x = RandomInput(6, 5, 9);
  ASSERT_OK_AND_ASSIGN(Matrix p1, net.Predict(x, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(Matrix p2, copy.Predict(x, BnMode::kInference));
  EXPECT_EQ(p1, p2);

  // ImportTensors into a fresh network restores the same function.
  ASSERT_OK_AND_ASSIGN(Network<float> fresh, Network<float>::Create(config, 99));
  ASSERT_OK(fresh.ImportTensors(exported));
  ASSERT_OK_AND_ASSIGN(Matrix p3, fresh.Predict(x, BnMode::kInference));
  EXPECT_EQ(p1, p3);
}

TEST(NetworkTest, FromTensorsAndImportRejectWrongNamesAndShapes) {
  NetworkConfig config = SmallConfig();
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 3));
  const std::map<std::string, Matrix> good = net.ExportTensors();

  std::map<std::string, Matrix> missing = good;
  missing.erase("running_var2");
  EXPECT_THAT(Network<float>::FromTensors(config, missing),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::map<std::string, Matrix> extra = good;
  extra["W4"] = Matrix::Zero(3, 3);
  EXPECT_THAT(Network<float>::FromTensors(config, extra),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::map<std::string, Matrix> renamed = good;
  renamed.erase("b3");
  renamed["bias3"] = Matrix::Zero(1, 3);
  EXPECT_THAT(Network<float>::FromTensors(config, renamed),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::map<std::string, Matrix> reshaped = good;
  reshaped["W2"] = Matrix::Zero(3, 4);
  EXPECT_THAT(Network<float>::FromTensors(config, reshaped),
              StatusIs(absl::StatusCode::kInvalidArgument));

  // ImportTensors accepts a subset, but a bad entry changes nothing at all.
  std::map<std::string, Matrix> partial = {{"b1", Matrix::Constant(1, 4, 5.0f)},
                                           {"W3", Matrix::Zero(2, 2)}};
  EXPECT_THAT(net.ImportTensors(partial), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(net.ExportTensors().at("b1"), good.at("b1"));
  partial.erase("W3");
  ASSERT_OK(net.ImportTensors(partial));
  EXPECT_EQ(net.ExportTensors().at("b1"), Matrix::Constant(1, 4, 5.0f));
}

// An untrusted config is checked against its tensors before the network is
// built. Each ctest case runs in a process of its own, so the peak RSS
// before the call is this test's: building the 1048576-63-1 network of the
// issue (66 M parameters, zero-filled) would raise it by about 500 MiB.
TEST(NetworkTest, FromTensorsRejectsMissingTensorsWithoutBuildingTheNetwork) {
  NetworkConfig config;
  config.input_size = 1048576;
  config.hidden_sizes = {63};
  config.output_size = 1;
  const auto peak_kib = [] {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
  };
  const long before = peak_kib();
  EXPECT_THAT(Network<float>::FromTensors(config, {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::map<std::string, Matrix> wrong = {{"W1", Matrix::Zero(2, 63)}};
  absl::StatusOr<Network<float>> rejected = Network<float>::FromTensors(config, wrong);
  EXPECT_THAT(rejected, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(rejected.status().message()),
              ::testing::HasSubstr("W1 has shape 2x63, expected 1048576x63"));
  EXPECT_LT(peak_kib() - before, 64 * 1024) << "KiB of peak RSS grew";
}

// The network's inference function written out with loops in double from the
// exported tensors, independently of the layer classes.
MatrixD ReferenceScores(const NetworkConfig& config, const std::map<std::string, Matrix>& t,
                        const Matrix& x) {
  MatrixD h = x.cast<double>();
  const int layers = static_cast<int>(config.hidden_sizes.size()) + 1;
  for (int l = 1; l <= layers; ++l) {
    const Matrix& w = t.at("W" + std::to_string(l));
    const Matrix& b = t.at("b" + std::to_string(l));
    MatrixD a(h.rows(), w.cols());
    for (Eigen::Index i = 0; i < h.rows(); ++i) {
      for (Eigen::Index j = 0; j < w.cols(); ++j) {
        double sum = b(0, j);
        for (Eigen::Index k = 0; k < w.rows(); ++k) sum += h(i, k) * w(k, j);
        a(i, j) = sum;
      }
    }
    if (l == layers) return a;
    const std::string s = std::to_string(l);
    for (Eigen::Index i = 0; i < a.rows(); ++i) {
      for (Eigen::Index j = 0; j < a.cols(); ++j) {
        double v = a(i, j);
        if (config.use_batchnorm) {
          v = t.at("gamma" + s)(0, j) * (v - t.at("running_mean" + s)(0, j)) /
                  std::sqrt(t.at("running_var" + s)(0, j) + config.bn_eps) +
              t.at("beta" + s)(0, j);
        }
        switch (config.activation) {
          case Activation::kRelu:
            v = v > 0 ? v : 0;
            break;
          case Activation::kSigmoid:
            v = 1 / (1 + std::exp(-v));
            break;
          case Activation::kTanh:
            v = std::tanh(v);
            break;
        }
        a(i, j) = v * (1 - config.dropout_ratio);
      }
    }
    h = a;
  }
  return h;
}

TEST(NetworkTest, PredictInInferenceMatchesIndependentComputation) {
  for (Activation activation : {Activation::kRelu, Activation::kSigmoid, Activation::kTanh}) {
    for (bool bn : {true, false}) {
      for (double dropout : {0.0, 0.3}) {
        NetworkConfig config = SmallConfig();
        config.activation = activation;
        config.use_batchnorm = bn;
        config.dropout_ratio = dropout;
        ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 11));
        TrainABit(&net, 200);
        const Matrix x = RandomInput(9, 5, 12);
        ASSERT_OK_AND_ASSIGN(Matrix scores, net.Predict(x, BnMode::kInference));
        const MatrixD expected = ReferenceScores(config, net.ExportTensors(), x);
        EXPECT_LE((scores.cast<double>() - expected).cwiseAbs().maxCoeff(), 1e-5)
            << ActivationName(activation) << " bn=" << bn << " dropout=" << dropout
            << "\nactual\n" << scores << "\nexpected\n" << expected;
      }
    }
  }
}

TEST(NetworkTest, DropoutScalesActivationsAtInference) {
  // Same weights, dropout 0.5 vs none, no BN, linear-ish check through ReLU:
  // with one hidden layer and positive activations the hidden output halves.
  NetworkConfig config = SmallConfig();
  config.hidden_sizes = {4};
  config.use_batchnorm = false;
  ASSERT_OK_AND_ASSIGN(Network<float> plain, Network<float>::Create(config, 4));
  config.dropout_ratio = 0.5;
  ASSERT_OK_AND_ASSIGN(Network<float> dropped,
                       Network<float>::FromTensors(config, plain.ExportTensors()));
  const Matrix x = RandomInput(3, 5, 5);
  ASSERT_OK_AND_ASSIGN(Matrix s_plain, plain.Predict(x, BnMode::kInference));
  ASSERT_OK_AND_ASSIGN(Matrix s_dropped, dropped.Predict(x, BnMode::kInference));
  // scores = h W2 + b2 with b2 = 0, so halving h halves the scores.
  EXPECT_TRUE(s_dropped.isApprox(0.5f * s_plain, 1e-6f))
      << "plain\n" << s_plain << "\ndropped\n" << s_dropped;
}

TEST(NetworkTest, PredictProbabilitiesRowsSumToOne) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(), 2));
  const Matrix x = RandomInput(10, 5, 3);
  for (BnMode mode : {BnMode::kInference, BnMode::kBatchStatistics}) {
    ASSERT_OK_AND_ASSIGN(Matrix p, net.PredictProbabilities(x, mode));
    ASSERT_EQ(p.rows(), 10);
    ASSERT_EQ(p.cols(), 3);
    EXPECT_TRUE((p.array() >= 0.0f).all());
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(p.row(i).sum(), 1.0f, 1e-6f) << "row " << i;
    ASSERT_OK_AND_ASSIGN(Matrix scores, net.Predict(x, mode));
    Eigen::Index best_score = 0, best_p = 0;
    scores.row(0).maxCoeff(&best_score);
    p.row(0).maxCoeff(&best_p);
    EXPECT_EQ(best_score, best_p);
  }
}

TEST(NetworkTest, InvalidInputsAreInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(), 2));
  const Matrix wrong = RandomInput(4, 6, 1);
  const Labels labels = RandomLabels(4, 3, 1);
  std::mt19937_64 rng(1);
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(net.Predict(wrong, BnMode::kInference), StatusIs(kInvalid));
  EXPECT_THAT(net.PredictProbabilities(wrong, BnMode::kInference), StatusIs(kInvalid));
  EXPECT_THAT(net.Loss(wrong, labels, BnMode::kInference), StatusIs(kInvalid));
  EXPECT_THAT(net.Accuracy(wrong, labels, BnMode::kInference), StatusIs(kInvalid));
  EXPECT_THAT(net.ComputeGradients(wrong, labels, &rng), StatusIs(kInvalid));
  EXPECT_THAT(net.Predict(Matrix(0, 5), BnMode::kInference), StatusIs(kInvalid));

  const Matrix x = RandomInput(4, 5, 1);
  EXPECT_THAT(net.ComputeGradients(x, RandomLabels(3, 3, 1), &rng), StatusIs(kInvalid));
  Labels out_of_range = labels;
  out_of_range(2) = 3;
  EXPECT_THAT(net.ComputeGradients(x, out_of_range, &rng), StatusIs(kInvalid));
  out_of_range(2) = -1;
  EXPECT_THAT(net.Loss(x, out_of_range, BnMode::kInference), StatusIs(kInvalid));

  // A single row: fine for inference, not for batch statistics or training.
  const Matrix one = RandomInput(1, 5, 2);
  EXPECT_THAT(net.Predict(one, BnMode::kInference), IsOk());
  EXPECT_THAT(net.Predict(one, BnMode::kBatchStatistics), StatusIs(kInvalid));
  EXPECT_THAT(net.ComputeGradients(one, RandomLabels(1, 3, 2), &rng), StatusIs(kInvalid));

  NetworkConfig with_dropout = SmallConfig();
  with_dropout.dropout_ratio = 0.2;
  ASSERT_OK_AND_ASSIGN(Network<float> dropped, Network<float>::Create(with_dropout, 2));
  EXPECT_THAT(dropped.ComputeGradients(x, labels, nullptr), StatusIs(kInvalid));
}

TEST(NetworkTest, OnlyComputeGradientsChangesRunningStatistics) {
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(SmallConfig(), 6));
  TrainABit(&net, 300);
  const auto before = net.ExportTensors();
  const Matrix x = RandomInput(8, 5, 7);
  const Labels labels = RandomLabels(8, 3, 7);
  for (BnMode mode : {BnMode::kInference, BnMode::kBatchStatistics}) {
    ASSERT_OK(net.Predict(x, mode).status());
    ASSERT_OK(net.PredictProbabilities(x, mode).status());
    ASSERT_OK(net.Loss(x, labels, mode).status());
    ASSERT_OK(net.Accuracy(x, labels, mode).status());
  }
  EXPECT_EQ(net.ExportTensors(), before);

  std::mt19937_64 rng(1);
  ASSERT_OK(net.ComputeGradients(x, labels, &rng).status());
  const auto after = net.ExportTensors();
  for (const char* name : {"running_mean1", "running_var1", "running_mean2", "running_var2"}) {
    EXPECT_NE(after.at(name), before.at(name)) << name;
  }
  // ... and nothing else: the optimizer, not ComputeGradients, moves weights.
  EXPECT_EQ(after.at("W1"), before.at("W1"));
  EXPECT_EQ(after.at("gamma1"), before.at("gamma1"));
}

TEST(NetworkTest, AccuracyCountsArgmaxHits) {
  NetworkConfig config = SmallConfig();
  config.use_batchnorm = false;
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 1));
  const Matrix x = RandomInput(12, 5, 8);
  ASSERT_OK_AND_ASSIGN(Matrix scores, net.Predict(x, BnMode::kInference));
  Labels labels(12);
  for (int i = 0; i < 12; ++i) {
    Eigen::Index best = 0;
    scores.row(i).maxCoeff(&best);
    labels(i) = static_cast<int>(i < 9 ? best : (best + 1) % 3);  // 9 of 12 right
  }
  ASSERT_OK_AND_ASSIGN(double accuracy, net.Accuracy(x, labels, BnMode::kInference));
  EXPECT_DOUBLE_EQ(accuracy, 0.75);
}

TEST(NetworkTest, TrainingReducesLoss) {
  NetworkConfig config = SmallConfig();
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 21));
  const Matrix x = RandomInput(30, 5, 22);
  const Labels labels = RandomLabels(30, 3, 22);
  ASSERT_OK_AND_ASSIGN(float initial, net.Loss(x, labels, BnMode::kBatchStatistics));
  for (int step = 0; step < 200; ++step) {
    ASSERT_OK(net.ComputeGradients(x, labels, nullptr).status());
    for (ParameterRef<float>& p : net.TrainableParameters()) *p.value -= 0.1f * *p.grad;
  }
  ASSERT_OK_AND_ASSIGN(float trained, net.Loss(x, labels, BnMode::kBatchStatistics));
  EXPECT_LT(trained, 0.7f * initial) << "initial " << initial << " trained " << trained;
}

// Cache sizes (L1d, L2, L3 in bytes) of CPUs a machine of this project may
// run on. Eigen sizes its product blocks from these, so whether a product
// needs more than the stack allows depends on them; each is forced in turn.
struct CacheProfile {
  const char* cpu;
  std::ptrdiff_t l1, l2, l3;
};
constexpr std::ptrdiff_t kKiB = 1024;
constexpr CacheProfile kCacheProfiles[] = {
    {"small (16K/128K/2M)", 16 * kKiB, 128 * kKiB, 2048 * kKiB},
    {"AMD EPYC Zen 2/3 (32K/512K/32M)", 32 * kKiB, 512 * kKiB, 32768 * kKiB},
    {"AMD EPYC Zen 4 (32K/1M/32M)", 32 * kKiB, 1024 * kKiB, 32768 * kKiB},
    {"Intel Xeon Skylake-SP (32K/1M/38.5M)", 32 * kKiB, 1024 * kKiB, 39424 * kKiB},
    {"Intel Xeon Ice Lake (48K/1.25M/48M)", 48 * kKiB, 1280 * kKiB, 49152 * kKiB},
    {"Intel Xeon Sapphire Rapids (48K/2M/105M)", 48 * kKiB, 2048 * kKiB, 107520 * kKiB},
    {"L2 64K (32K/64K/8M)", 32 * kKiB, 64 * kKiB, 8192 * kKiB},
    {"L1 64K (64K/512K/16M)", 64 * kKiB, 512 * kKiB, 16384 * kKiB},
};

// Restores Eigen's cache sizes (the host's, as Eigen detected them) when it
// goes out of scope.
class ScopedEigenCacheSizes {
 public:
  ScopedEigenCacheSizes()
      : l1_(Eigen::l1CacheSize()), l2_(Eigen::l2CacheSize()), l3_(Eigen::l3CacheSize()) {}
  ~ScopedEigenCacheSizes() { Eigen::setCpuCacheSizes(l1_, l2_, l3_); }
  void Set(const CacheProfile& profile) {
    Eigen::setCpuCacheSizes(profile.l1, profile.l2, profile.l3);
  }

 private:
  const std::ptrdiff_t l1_, l2_, l3_;
};

// Once the batch size is stable, a training iteration of the seed network
// (batch 100, 784-100x5-10) reuses its buffers: no allocation, on the host's
// caches and on every profile above.
TEST(NetworkTest, ComputeGradientsDoesNotAllocateOnceWarm) {
  {  // the counter sees Eigen's allocations, so a zero below means something
    const long start = MallocCalls();
    Matrix probe(64, 64);
    probe.setZero();
    ASSERT_GT(MallocCalls(), start);
  }
  ScopedEigenCacheSizes caches;
  std::vector<CacheProfile> profiles = {{"this host", Eigen::l1CacheSize(),
                                         Eigen::l2CacheSize(), Eigen::l3CacheSize()}};
  profiles.insert(profiles.end(), std::begin(kCacheProfiles), std::end(kCacheProfiles));
  for (const CacheProfile& profile : profiles) {
    caches.Set(profile);
    for (bool bn : {true, false}) {
      for (double dropout : {0.0, 0.5}) {
        NetworkConfig config;  // the seed network's shape, where it matters
        config.use_batchnorm = bn;
        config.dropout_ratio = dropout;
        config.weight_decay_lambda = 0.01;
        ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 1));
        const Matrix x = RandomInput(100, 784, 2);
        const Labels labels = RandomLabels(100, 10, 3);
        std::mt19937_64 rng(4);
        std::vector<ParameterRef<float>> params = net.TrainableParameters();
        ASSERT_OK(net.ComputeGradients(x, labels, &rng).status());  // warm-up
        const long before = MallocCalls();
        for (int step = 0; step < 3; ++step) {
          absl::StatusOr<float> loss = net.ComputeGradients(x, labels, &rng);
          ASSERT_TRUE(loss.ok());
          for (ParameterRef<float>& p : params) *p.value -= 0.01f * *p.grad;
        }
        EXPECT_EQ(MallocCalls() - before, 0)
            << profile.cpu << ": bn=" << bn << " dropout=" << dropout;
      }
    }
  }
}

// At the seed network's shape the training pass and Predict with batch
// statistics compute the same function, bit for bit (the loss that training
// reports is the loss of the network it trains).
TEST(NetworkTest, TrainingLossEqualsBatchStatisticsLossAtTheSeedShape) {
  for (bool bn : {true, false}) {
    NetworkConfig config;
    config.use_batchnorm = bn;
    ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 5));
    const Matrix x = RandomInput(100, 784, 6);
    const Labels labels = RandomLabels(100, 10, 7);
    ASSERT_OK_AND_ASSIGN(float expected, net.Loss(x, labels, BnMode::kBatchStatistics));
    ASSERT_OK_AND_ASSIGN(float trained, net.ComputeGradients(x, labels, nullptr));
    EXPECT_EQ(trained, expected) << "bn=" << bn;
  }
}

TEST(NetworkTest, NoHiddenLayerIsSoftmaxRegression) {
  NetworkConfig config = SmallConfig();
  config.hidden_sizes.clear();
  ASSERT_OK_AND_ASSIGN(Network<float> net, Network<float>::Create(config, 1));
  std::vector<std::string> names;
  for (const ParameterRef<float>& p : net.TrainableParameters()) names.push_back(p.name);
  EXPECT_THAT(names, ElementsAre("W1", "b1"));
  const Matrix x = RandomInput(4, 5, 1);
  ASSERT_OK_AND_ASSIGN(float loss, net.ComputeGradients(x, RandomLabels(4, 3, 1), nullptr));
  EXPECT_TRUE(std::isfinite(loss));
  ASSERT_OK_AND_ASSIGN(Matrix scores, net.Predict(x, BnMode::kInference));
  const Matrix w = net.ExportTensors().at("W1");
  EXPECT_TRUE(scores.isApprox(x * w, 1e-6f));
}

}  // namespace
}  // namespace bnserve
