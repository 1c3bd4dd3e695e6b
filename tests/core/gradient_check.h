// Finite-difference helpers shared by the core numerics tests.
//
//   MatrixD numeric = NumericalGradient([&] { return Loss(); }, &param, 1e-5);
//   EXPECT_TRUE(GradientsMatch(analytic, numeric, 1e-6, "W1"));
//
// Not thread-safe: NumericalGradient perturbs *param in place (and restores it).
#ifndef BNSERVE_TESTS_CORE_GRADIENT_CHECK_H_
#define BNSERVE_TESTS_CORE_GRADIENT_CHECK_H_

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "core/eigen_types.h"
#include "gtest/gtest.h"

namespace bnserve {
namespace testing {

// |a - n| / max(1e-8, |a| + |n|): 0 when both are 0, ~1 when they disagree
// completely, independent of the gradient's scale otherwise.
inline double RelativeError(double analytic, double numeric) {
  return std::abs(analytic - numeric) /
         std::max(1e-8, std::abs(analytic) + std::abs(numeric));
}

// Central differences (f(p + h) - f(p - h)) / 2h for every entry of *param.
template <typename LossFn>
MatrixD NumericalGradient(LossFn&& loss, MatrixD* param, double step) {
  MatrixD grad(param->rows(), param->cols());
  for (Eigen::Index r = 0; r < param->rows(); ++r) {
    for (Eigen::Index c = 0; c < param->cols(); ++c) {
      const double saved = (*param)(r, c);
      (*param)(r, c) = saved + step;
      const double plus = loss();
      (*param)(r, c) = saved - step;
      const double minus = loss();
      (*param)(r, c) = saved;
      grad(r, c) = (plus - minus) / (2.0 * step);
    }
  }
  return grad;
}

// Success when shapes agree and every entry's RelativeError <= tolerance;
// otherwise names every offending entry with its expected and actual value.
inline ::testing::AssertionResult GradientsMatch(const MatrixD& analytic,
                                                 const MatrixD& numeric, double tolerance,
                                                 const std::string& name) {
  if (analytic.rows() != numeric.rows() || analytic.cols() != numeric.cols()) {
    return ::testing::AssertionFailure()
           << name << ": analytic gradient is " << analytic.rows() << "x" << analytic.cols()
           << ", numerical " << numeric.rows() << "x" << numeric.cols();
  }
  std::ostringstream failures;
  int bad = 0;
  double worst = 0.0;
  for (Eigen::Index r = 0; r < analytic.rows(); ++r) {
    for (Eigen::Index c = 0; c < analytic.cols(); ++c) {
      const double error = RelativeError(analytic(r, c), numeric(r, c));
      worst = std::max(worst, error);
      if (!(error <= tolerance)) {
        ++bad;
        failures.precision(12);
        failures << "\n  " << name << "(" << r << "," << c << "): expected (numerical) "
                 << numeric(r, c) << ", actual (analytic) " << analytic(r, c)
                 << ", relative error " << error;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << ": " << bad << " entries above relative error "
                                       << tolerance << " (worst " << worst << ")"
                                       << failures.str();
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_CORE_GRADIENT_CHECK_H_
