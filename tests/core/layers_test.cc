// Forward values and finite-difference backward checks of the small layers:
// Affine, Relu, Sigmoid, Tanh, Dropout, SoftmaxWithLoss.
#include <cmath>
#include <random>

#include "core/affine.h"
#include "core/dropout.h"
#include "core/eigen_types.h"
#include "core/gemm.h"
#include "core/relu.h"
#include "core/sigmoid.h"
#include "core/softmax_with_loss.h"
#include "core/tanh_layer.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"

namespace bnserve {
namespace {

using ::bnserve::testing::GradientsMatch;
using ::bnserve::testing::NumericalGradient;

constexpr double kStep = 1e-5;
constexpr double kTolerance = 1e-6;

MatrixD RandomMatrix(int rows, int cols, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-scale, scale);
  MatrixD m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = uniform(rng);
  return m;
}

// The scalar sum(g .* y) whose gradient with respect to y is g: turns a layer
// backward into something finite differences can check.
double Project(const MatrixD& y, const MatrixD& g) { return (y.array() * g.array()).sum(); }

TEST(AffineTest, ForwardMatchesLoops) {
  Affine<double> affine(3, 2);
  affine.weights() = RandomMatrix(3, 2, 1);
  affine.bias() = RandomMatrix(1, 2, 2);
  const MatrixD x = RandomMatrix(4, 3, 3);
  MatrixD y;
  affine.Forward(x, &y);
  ASSERT_EQ(y.rows(), 4);
  ASSERT_EQ(y.cols(), 2);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 2; ++j) {
      double expected = affine.bias()(0, j);
      for (int k = 0; k < 3; ++k) expected += x(i, k) * affine.weights()(k, j);
      EXPECT_NEAR(y(i, j), expected, 1e-14) << "(" << i << "," << j << ")";
    }
  }
}

// dx, dW and db of Backward against finite differences of Forward, for a
// batch x fan_in -> fan_out layer; the training forward runs first when
// `train_forward` (the workspace path).
void CheckAffineGradients(int batch, int fan_in, int fan_out, uint64_t seed,
                          bool train_forward) {
  GemmWorkspace<double> workspace;
  Affine<double> affine(fan_in, fan_out);
  affine.weights() = RandomMatrix(fan_in, fan_out, seed);
  affine.bias() = RandomMatrix(1, fan_out, seed + 1);
  MatrixD x = RandomMatrix(batch, fan_in, seed + 2);
  const MatrixD g = RandomMatrix(batch, fan_out, seed + 3);
  MatrixD y, dx;
  if (train_forward) {
    affine.ForwardTrain(x, &y, &workspace);
  } else {
    affine.Forward(x, &y);
  }
  affine.Backward(x, g, &dx, &workspace);
  auto loss = [&] {
    MatrixD out;
    affine.Forward(x, &out);
    return Project(out, g);
  };
  const MatrixD dw = affine.weights_grad();
  const MatrixD db = affine.bias_grad();
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, kStep), kTolerance, "dx"));
  EXPECT_TRUE(GradientsMatch(dw, NumericalGradient(loss, &affine.weights(), kStep),
                             kTolerance, "dW"));
  EXPECT_TRUE(
      GradientsMatch(db, NumericalGradient(loss, &affine.bias(), kStep), kTolerance, "db"));
}

TEST(AffineTest, BackwardMatchesFiniteDifferences) {
  CheckAffineGradients(5, 4, 3, 4, /*train_forward=*/false);
}

TEST(AffineTest, BackwardWithoutDxStillComputesParameterGradients) {
  GemmWorkspace<double> workspace;
  Affine<double> affine(4, 3);
  affine.weights() = RandomMatrix(4, 3, 8);
  const MatrixD x = RandomMatrix(5, 4, 9);
  const MatrixD g = RandomMatrix(5, 3, 10);
  affine.Backward(x, g, nullptr, &workspace);
  const MatrixD expected_dw = x.transpose() * g;
  EXPECT_TRUE(affine.weights_grad().isApprox(expected_dw, 1e-14));
  EXPECT_TRUE(affine.bias_grad().isApprox(g.colwise().sum(), 1e-14));
}

// Shapes large enough that the products run Eigen's blocked kernel (GEBP)
// through a workspace, not the coefficient-based tiny product.
TEST(AffineTest, BackwardMatchesFiniteDifferencesAtBlockedSizes) {
  CheckAffineGradients(23, 41, 27, 11, /*train_forward=*/true);
}

// The training product sums in the same order as the inference one, so a
// training forward and Predict with batch statistics agree exactly: for a
// tiny layer, a blocked one, and the seed network's first layer (whose depth
// Forward splits into pieces).
TEST(AffineTest, ForwardTrainMatchesForwardBitForBit) {
  struct Shape {
    int batch, fan_in, fan_out;
  };
  for (const Shape& s : {Shape{4, 3, 2}, Shape{23, 41, 27}, Shape{100, 784, 100},
                         Shape{256, 784, 100}, Shape{100, 100, 10}}) {
    Affine<float> affine(s.fan_in, s.fan_out);
    affine.weights() = RandomMatrix(s.fan_in, s.fan_out, 15).cast<float>();
    affine.bias() = RandomMatrix(1, s.fan_out, 16).cast<float>();
    const Matrix x = RandomMatrix(s.batch, s.fan_in, 17).cast<float>();
    Matrix inference, training;
    GemmWorkspace<float> workspace;
    affine.Forward(x, &inference);
    for (int repeat = 0; repeat < 2; ++repeat) {  // fresh and reused workspaces
      affine.ForwardTrain(x, &training, &workspace);
      EXPECT_TRUE(training == inference)
          << s.batch << "x" << s.fan_in << "->" << s.fan_out << " repeat " << repeat
          << ": max difference " << (training - inference).cwiseAbs().maxCoeff();
    }
  }
}

TEST(ReluTest, ForwardAndBackward) {
  MatrixD x(2, 3);
  x << -1.5, 0.0, 2.0, 3.0, -0.25, 0.5;
  MatrixD y;
  Relu<double>().Forward(x, &y);
  MatrixD expected(2, 3);
  expected << 0.0, 0.0, 2.0, 3.0, 0.0, 0.5;
  EXPECT_EQ(y, expected);

  MatrixD g(2, 3);
  g << 1, 2, 3, 4, 5, 6;
  MatrixD dx;
  Relu<double>().Backward(y, g, &dx);
  MatrixD expected_dx(2, 3);
  expected_dx << 0, 0, 3, 4, 0, 6;  // zero where x <= 0, as in the book
  EXPECT_EQ(dx, expected_dx);

  // Finite differences away from the kink.
  MatrixD xs = RandomMatrix(4, 5, 11);
  for (Eigen::Index i = 0; i < xs.size(); ++i) {
    if (std::abs(xs.data()[i]) < 1e-3) xs.data()[i] = 0.5;
  }
  const MatrixD gs = RandomMatrix(4, 5, 12);
  MatrixD ys, dxs;
  Relu<double>().Forward(xs, &ys);
  Relu<double>().Backward(ys, gs, &dxs);
  auto loss = [&] {
    MatrixD out;
    Relu<double>().Forward(xs, &out);
    return Project(out, gs);
  };
  EXPECT_TRUE(GradientsMatch(dxs, NumericalGradient(loss, &xs, kStep), kTolerance, "dx"));
}

TEST(SigmoidTest, ForwardAndBackward) {
  MatrixD x = RandomMatrix(4, 5, 13, 4.0);
  MatrixD y;
  Sigmoid<double>().Forward(x, &y);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y.data()[i], 1.0 / (1.0 + std::exp(-x.data()[i])), 1e-15);
  }
  const MatrixD g = RandomMatrix(4, 5, 14);
  MatrixD dx;
  Sigmoid<double>().Backward(y, g, &dx);
  auto loss = [&] {
    MatrixD out;
    Sigmoid<double>().Forward(x, &out);
    return Project(out, g);
  };
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, kStep), kTolerance, "dx"));
}

TEST(SigmoidTest, SaturatesWithoutOverflow) {
  Matrix x(1, 2);
  x << -200.0f, 200.0f;
  Matrix y;
  Sigmoid<float>().Forward(x, &y);
  EXPECT_TRUE(y.allFinite());
  EXPECT_NEAR(y(0, 0), 0.0f, 1e-30f);
  EXPECT_NEAR(y(0, 1), 1.0f, 1e-6f);
}

TEST(TanhTest, ForwardAndBackward) {
  MatrixD x = RandomMatrix(4, 5, 15, 3.0);
  MatrixD y;
  Tanh<double>().Forward(x, &y);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y.data()[i], std::tanh(x.data()[i]), 1e-15);
  }
  const MatrixD g = RandomMatrix(4, 5, 16);
  MatrixD dx;
  Tanh<double>().Backward(y, g, &dx);
  auto loss = [&] {
    MatrixD out;
    Tanh<double>().Forward(x, &out);
    return Project(out, g);
  };
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, kStep), kTolerance, "dx"));
}

TEST(TanhTest, FloatForwardIsAccurate) {
  Matrix x = RandomMatrix(8, 16, 17, 5.0).cast<float>();
  Matrix y;
  Tanh<float>().Forward(x, &y);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y.data()[i], std::tanh(x.data()[i]), 1e-6f);
  }
}

TEST(DropoutTest, TrainMaskFollowsUniformAboveRatio) {
  const double ratio = 0.3;
  Dropout<double> dropout(ratio);
  const MatrixD x = RandomMatrix(3, 4, 18) + MatrixD::Constant(3, 4, 2.0);  // no zeros
  std::mt19937_64 rng(19);
  MatrixD y;
  dropout.ForwardTrain(x, &rng, &y);
  // Replay the same generator: the mask is uniform > ratio in row-major order.
  std::mt19937_64 replay(19);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) {
      const bool keep = uniform(replay) > ratio;
      EXPECT_EQ(y(i, j), keep ? x(i, j) : 0.0) << "(" << i << "," << j << ")";
      EXPECT_EQ(dropout.mask()(i, j), keep ? 1.0 : 0.0);
    }
  }
}

TEST(DropoutTest, KeepsAboutOneMinusRatio) {
  Dropout<float> dropout(0.25);
  const Matrix x = Matrix::Ones(200, 100);
  std::mt19937_64 rng(20);
  Matrix y;
  dropout.ForwardTrain(x, &rng, &y);
  const double kept = y.sum() / static_cast<double>(y.size());
  EXPECT_NEAR(kept, 0.75, 0.02);
}

TEST(DropoutTest, InferenceScalesByOneMinusRatio) {
  Dropout<double> dropout(0.4);
  const MatrixD x = RandomMatrix(3, 5, 21);
  MatrixD y;
  dropout.ForwardInference(x, &y);
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    EXPECT_DOUBLE_EQ(y.data()[i], x.data()[i] * 0.6);
  }
}

TEST(DropoutTest, BackwardMatchesFiniteDifferencesForAFixedMask) {
  Dropout<double> dropout(0.5);
  MatrixD x = RandomMatrix(4, 6, 22);
  const MatrixD g = RandomMatrix(4, 6, 23);
  MatrixD y, dx;
  std::mt19937_64 rng(24);
  dropout.ForwardTrain(x, &rng, &y);
  dropout.Backward(g, &dx);
  auto loss = [&] {
    std::mt19937_64 same(24);  // the same mask every time
    MatrixD out;
    dropout.ForwardTrain(x, &same, &out);
    return Project(out, g);
  };
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, kStep), kTolerance, "dx"));
  // Dropped elements get no gradient at all.
  for (Eigen::Index i = 0; i < dx.size(); ++i) {
    if (dropout.mask().data()[i] == 0.0) {
      EXPECT_EQ(dx.data()[i], 0.0);
    }
  }
}

TEST(SoftmaxWithLossTest, ForwardMatchesDefinition) {
  const MatrixD x = RandomMatrix(3, 4, 25, 3.0);
  Labels labels(3);
  labels << 2, 0, 3;
  SoftmaxWithLoss<double> layer;
  const double loss = layer.Forward(x, labels);
  double expected_loss = 0.0;
  for (int i = 0; i < 3; ++i) {
    double denominator = 0.0;
    for (int j = 0; j < 4; ++j) denominator += std::exp(x(i, j));
    for (int j = 0; j < 4; ++j) {
      EXPECT_NEAR(layer.probabilities()(i, j), std::exp(x(i, j)) / denominator, 1e-15);
    }
    expected_loss -= std::log(std::exp(x(i, labels(i))) / denominator);
  }
  EXPECT_NEAR(loss, expected_loss / 3.0, 1e-14);
  EXPECT_EQ(SoftmaxWithLoss<double>::Loss(x, labels), loss);
  MatrixD probabilities;
  SoftmaxWithLoss<double>::Softmax(x, &probabilities);
  EXPECT_EQ(probabilities, layer.probabilities());
}

TEST(SoftmaxWithLossTest, StableForHugeScores) {
  Matrix x(2, 3);
  x << 1000.0f, 0.0f, -1000.0f, 5000.0f, 5000.0f, 4990.0f;
  Labels labels(2);
  labels << 0, 2;
  SoftmaxWithLoss<float> layer;
  const float loss = layer.Forward(x, labels);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_TRUE(layer.probabilities().allFinite());
  // Row 0 is certain of its label (loss 0), row 1 assigns its label
  // exp(-10) / (2 + exp(-10)).
  const double row1 = -std::log(std::exp(-10.0) / (2.0 + std::exp(-10.0)));
  EXPECT_NEAR(loss, row1 / 2.0, 1e-4);
}

TEST(SoftmaxWithLossTest, BackwardMatchesFiniteDifferences) {
  MatrixD x = RandomMatrix(5, 4, 26, 2.0);
  Labels labels(5);
  labels << 0, 3, 1, 1, 2;
  SoftmaxWithLoss<double> layer;
  layer.Forward(x, labels);
  MatrixD dx;
  layer.Backward(labels, &dx);
  auto loss = [&] { return SoftmaxWithLoss<double>::Loss(x, labels); };
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, kStep), kTolerance, "dx"));
}

}  // namespace
}  // namespace bnserve
