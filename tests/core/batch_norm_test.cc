// BatchNorm: forward values against explicit loops, running statistics,
// inference mode, the batch-of-one error, finite-difference gradients and
// batch independence of inference.
#include "core/batch_norm.h"

#include <cmath>
#include <random>
#include <vector>

#include "core/eigen_types.h"
#include "gtest/gtest.h"
#include "tests/core/gradient_check.h"
#include "tests/testing/status_matchers.h"

namespace bnserve {
namespace {

using ::bnserve::testing::GradientsMatch;
using ::bnserve::testing::NumericalGradient;
using ::bnserve::testing::StatusIs;

MatrixD RandomMatrix(int rows, int cols, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(lo, hi);
  MatrixD m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = uniform(rng);
  return m;
}

struct Stats {
  std::vector<double> mean, var;
};

// Per-column mean and biased variance with plain loops.
Stats ColumnStats(const MatrixD& x) {
  Stats s;
  for (Eigen::Index j = 0; j < x.cols(); ++j) {
    double sum = 0.0;
    for (Eigen::Index i = 0; i < x.rows(); ++i) sum += x(i, j);
    const double mean = sum / x.rows();
    double sq = 0.0;
    for (Eigen::Index i = 0; i < x.rows(); ++i) sq += (x(i, j) - mean) * (x(i, j) - mean);
    s.mean.push_back(mean);
    s.var.push_back(sq / x.rows());
  }
  return s;
}

// gamma * (x - mean) / sqrt(var + eps) + beta with plain loops.
MatrixD Normalize(const MatrixD& x, const std::vector<double>& mean,
                  const std::vector<double>& var, const MatrixD& gamma,
                  const MatrixD& beta, double eps) {
  MatrixD y(x.rows(), x.cols());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    for (Eigen::Index j = 0; j < x.cols(); ++j) {
      y(i, j) = gamma(0, j) * (x(i, j) - mean[j]) / std::sqrt(var[j] + eps) + beta(0, j);
    }
  }
  return y;
}

double MaxAbsDiff(const MatrixD& a, const MatrixD& b) {
  return (a - b).cwiseAbs().maxCoeff();
}

TEST(BatchNormTest, DefaultsFollowTheBookExceptRunningVar) {
  BatchNorm<float> bn(3);
  EXPECT_EQ(bn.features(), 3);
  EXPECT_DOUBLE_EQ(bn.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(bn.eps(), 1e-6);
  EXPECT_EQ(bn.gamma(), Matrix::Ones(1, 3));
  EXPECT_EQ(bn.beta(), Matrix::Zero(1, 3));
  EXPECT_EQ(bn.running_mean(), Matrix::Zero(1, 3));
  EXPECT_EQ(bn.running_var(), Matrix::Ones(1, 3));
}

TEST(BatchNormTest, TrainForwardMatchesHandComputedValues) {
  MatrixD x(4, 3);
  x << 1.0, -2.0, 0.5,  //
      3.0, 0.0, 0.25,   //
      -1.0, 4.0, 0.75,  //
      5.0, 2.0, 0.5;
  const double eps = 1e-3;
  BatchNorm<double> bn(3, 0.9, eps);
  bn.gamma() << 2.0, 0.5, -1.0;
  bn.beta() << 0.1, -0.2, 0.3;
  MatrixD y;
  ASSERT_OK(bn.ForwardTrain(x, &y));
  const Stats s = ColumnStats(x);
  const MatrixD expected = Normalize(x, s.mean, s.var, bn.gamma(), bn.beta(), eps);
  EXPECT_LE(MaxAbsDiff(y, expected), 1e-13) << "actual\n" << y << "\nexpected\n" << expected;
  // Column 0 by hand: mean 2, var 5.
  EXPECT_NEAR(y(0, 0), 2.0 * (1.0 - 2.0) / std::sqrt(5.0 + eps) + 0.1, 1e-13);

  // The float instantiation agrees to float precision.
  BatchNorm<float> bnf(3, 0.9, eps);
  bnf.gamma() = bn.gamma().cast<float>();
  bnf.beta() = bn.beta().cast<float>();
  Matrix yf;
  ASSERT_OK(bnf.ForwardTrain(x.cast<float>(), &yf));
  EXPECT_LE(MaxAbsDiff(yf.cast<double>(), expected), 1e-5);
}

TEST(BatchNormTest, RunningStatisticsAfterOneAndTwoSteps) {
  const double momentum = 0.8;
  BatchNorm<double> bn(2, momentum, 1e-6);
  const MatrixD x1 = RandomMatrix(5, 2, 1, 0.0, 4.0);
  const MatrixD x2 = RandomMatrix(6, 2, 2, -3.0, 1.0);
  MatrixD y;
  ASSERT_OK(bn.ForwardTrain(x1, &y));
  const Stats s1 = ColumnStats(x1);
  for (int j = 0; j < 2; ++j) {
    EXPECT_NEAR(bn.running_mean()(0, j), (1 - momentum) * s1.mean[j], 1e-14);
    EXPECT_NEAR(bn.running_var()(0, j), momentum * 1.0 + (1 - momentum) * s1.var[j], 1e-14);
  }
  ASSERT_OK(bn.ForwardTrain(x2, &y));
  const Stats s2 = ColumnStats(x2);
  for (int j = 0; j < 2; ++j) {
    const double mean1 = (1 - momentum) * s1.mean[j];
    const double var1 = momentum + (1 - momentum) * s1.var[j];
    EXPECT_NEAR(bn.running_mean()(0, j), momentum * mean1 + (1 - momentum) * s2.mean[j],
                1e-14);
    EXPECT_NEAR(bn.running_var()(0, j), momentum * var1 + (1 - momentum) * s2.var[j], 1e-14);
  }
}

TEST(BatchNormTest, InferenceUsesRunningStatistics) {
  const double eps = 1e-6;
  BatchNorm<double> bn(3, 0.9, eps);
  bn.gamma() << 1.5, -0.5, 2.0;
  bn.beta() << 0.0, 1.0, -1.0;
  bn.running_mean() << 0.5, -1.0, 2.0;
  bn.running_var() << 4.0, 0.25, 9.0;
  const MatrixD x = RandomMatrix(5, 3, 3, -5.0, 5.0);
  MatrixD y;
  bn.ForwardInference(x, &y);
  const MatrixD expected =
      Normalize(x, {0.5, -1.0, 2.0}, {4.0, 0.25, 9.0}, bn.gamma(), bn.beta(), eps);
  EXPECT_LE(MaxAbsDiff(y, expected), 1e-12) << "actual\n" << y << "\nexpected\n" << expected;
  // The batch statistics play no role: they would give a different answer.
  const Stats s = ColumnStats(x);
  EXPECT_GT(MaxAbsDiff(y, Normalize(x, s.mean, s.var, bn.gamma(), bn.beta(), eps)), 0.1);
  // Inference leaves the running statistics alone.
  EXPECT_EQ(bn.running_mean(), (MatrixD(1, 3) << 0.5, -1.0, 2.0).finished());
}

TEST(BatchNormTest, BatchOfOneIsInvalidArgumentAndChangesNothing) {
  BatchNorm<float> bn(3);
  const Matrix x = Matrix::Constant(1, 3, 2.0f);
  Matrix y;
  EXPECT_THAT(bn.ForwardTrain(x, &y), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(bn.ForwardBatchStatistics(x, &y), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(bn.running_mean(), Matrix::Zero(1, 3));
  EXPECT_EQ(bn.running_var(), Matrix::Ones(1, 3));
  // Inference is fine with one row.
  bn.ForwardInference(x, &y);
  EXPECT_TRUE(y.allFinite());
}

TEST(BatchNormTest, WrongFeatureCountIsInvalidArgument) {
  BatchNorm<float> bn(3);
  Matrix y;
  EXPECT_THAT(bn.ForwardTrain(Matrix::Ones(4, 2), &y),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(BatchNormTest, BatchStatisticsForwardEqualsTrainForwardWithoutUpdating) {
  BatchNorm<float> bn(4);
  bn.gamma() << 1.0f, 2.0f, 3.0f, 4.0f;
  const Matrix x = RandomMatrix(6, 4, 4).cast<float>();
  Matrix y_stats, y_train;
  ASSERT_OK(bn.ForwardBatchStatistics(x, &y_stats));
  EXPECT_EQ(bn.running_mean(), Matrix::Zero(1, 4));
  EXPECT_EQ(bn.running_var(), Matrix::Ones(1, 4));
  ASSERT_OK(bn.ForwardTrain(x, &y_train));
  EXPECT_EQ(y_stats, y_train);  // bit-identical
  EXPECT_NE(bn.running_mean(), Matrix::Zero(1, 4));
}

TEST(BatchNormTest, BackwardMatchesFiniteDifferences) {
  const int n = 6, d = 4;
  BatchNorm<double> bn(d, 0.9, 1e-6);
  bn.gamma() = RandomMatrix(1, d, 5, 0.5, 2.0);
  bn.beta() = RandomMatrix(1, d, 6);
  MatrixD x = RandomMatrix(n, d, 7, -2.0, 3.0);
  const MatrixD g = RandomMatrix(n, d, 8);
  MatrixD y, dx;
  ASSERT_OK(bn.ForwardTrain(x, &y));
  bn.Backward(g, &dx);
  const MatrixD dgamma = bn.gamma_grad();
  const MatrixD dbeta = bn.beta_grad();
  auto loss = [&] {
    MatrixD out;
    EXPECT_OK(bn.ForwardBatchStatistics(x, &out));
    return (out.array() * g.array()).sum();
  };
  EXPECT_TRUE(GradientsMatch(dx, NumericalGradient(loss, &x, 1e-5), 1e-6, "dx"));
  EXPECT_TRUE(GradientsMatch(dgamma, NumericalGradient(loss, &bn.gamma(), 1e-5), 1e-6,
                             "dgamma"));
  EXPECT_TRUE(GradientsMatch(dbeta, NumericalGradient(loss, &bn.beta(), 1e-5), 1e-6,
                             "dbeta"));
  // A batch-normalized output is invariant to shifting a column, so the
  // column sums of dx vanish.
  EXPECT_LE(dx.colwise().sum().cwiseAbs().maxCoeff(), 1e-12);
}

// Inference must transform each row on its own: serving one request must not
// depend on what else is in the batch. Train mode (batch statistics) does
// depend on the batch, and the same perturbation shows it.
TEST(BatchNormTest, InferenceIsBatchIndependent) {
  const int n = 8, d = 16;
  BatchNorm<float> bn(d);
  // Give the layer non-trivial running statistics by training on a few batches.
  Matrix y;
  for (int step = 0; step < 5; ++step) {
    ASSERT_OK(bn.ForwardTrain(RandomMatrix(n, d, 10 + step, -1.0, 3.0).cast<float>(), &y));
  }
  bn.gamma() = RandomMatrix(1, d, 20, 0.5, 2.0).cast<float>();
  bn.beta() = RandomMatrix(1, d, 21).cast<float>();

  const Matrix batch = RandomMatrix(n, d, 30, -1.0, 3.0).cast<float>();
  const int row = 3;
  Matrix alone, in_batch;
  bn.ForwardInference(batch.row(row), &alone);
  bn.ForwardInference(batch, &in_batch);
  EXPECT_LE((alone.row(0) - in_batch.row(row)).cwiseAbs().maxCoeff(), 1e-5f);

  Matrix perturbed = batch;
  for (int i = 0; i < n; ++i) {
    if (i != row) perturbed.row(i) *= 1000.0f;
  }
  Matrix in_perturbed;
  bn.ForwardInference(perturbed, &in_perturbed);
  EXPECT_LE((in_perturbed.row(row) - in_batch.row(row)).cwiseAbs().maxCoeff(), 1e-6f);

  Matrix train_batch, train_perturbed;
  ASSERT_OK(bn.ForwardBatchStatistics(batch, &train_batch));
  ASSERT_OK(bn.ForwardBatchStatistics(perturbed, &train_perturbed));
  EXPECT_GT((train_perturbed.row(row) - train_batch.row(row)).cwiseAbs().maxCoeff(), 0.5f);
}

}  // namespace
}  // namespace bnserve
