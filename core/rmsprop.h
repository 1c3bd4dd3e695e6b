// RmsProp: AdaGrad with an exponentially decaying squared-gradient average,
// as the book's common/optimizer.py RMSprop:
//
//   h = decay_rate * h + (1 - decay_rate) * grad * grad
//   value -= lr * grad / (sqrt(h) + 1e-7)
//
// h starts at zero and is kept per parameter name (a shape change restarts
// it from zero). Not thread-safe: one optimizer belongs to one training loop.
// Update allocates only when it first sees a parameter.
#ifndef BNSERVE_CORE_RMSPROP_H_
#define BNSERVE_CORE_RMSPROP_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/eigen_types.h"
#include "core/optimizer.h"
#include "core/parameter_ref.h"

namespace bnserve {

class RmsProp : public Optimizer {
 public:
  // The book's epsilon in the denominator.
  static constexpr float kEpsilon = 1e-7f;

  // REQUIRES: learning_rate > 0, 0 <= decay_rate < 1 (ValidateOptimizerConfig).
  RmsProp(double learning_rate, double decay_rate);

  void Update(const std::vector<ParameterRef<float>>& params) override;

 private:
  const float learning_rate_;
  const float decay_rate_;
  absl::flat_hash_map<std::string, Matrix> mean_square_;
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_RMSPROP_H_
