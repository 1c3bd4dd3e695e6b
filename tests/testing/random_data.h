// Seeded random inputs and labels for tests and benchmarks: the same seed
// gives the same data with any standard library version we build with.
// Header-only, no GoogleTest dependency (the benchmarks include it too).
// Stateless functions; thread-safe.
#ifndef BNSERVE_TESTS_TESTING_RANDOM_DATA_H_
#define BNSERVE_TESTS_TESTING_RANDOM_DATA_H_

#include <cstdint>
#include <random>

#include "core/eigen_types.h"

namespace bnserve {
namespace testing {

// rows x cols values uniform in [0, 1), like scaled pixels.
inline Matrix RandomInput(int rows, int cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  Matrix x(rows, cols);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = uniform(rng);
  return x;
}

// `rows` labels in [0, classes).
inline Labels RandomLabels(int rows, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Labels labels(rows);
  for (int i = 0; i < rows; ++i) labels(i) = static_cast<int>(rng() % classes);
  return labels;
}

}  // namespace testing
}  // namespace bnserve

#endif  // BNSERVE_TESTS_TESTING_RANDOM_DATA_H_
