// Adam (http://arxiv.org/abs/1412.6980v8) in the form of the book's
// common/optimizer.py Adam, with the bias correction folded into the step:
//
//   t += 1                                   (once per Update call)
//   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
//   m += (1 - beta1) * (grad - m)
//   v += (1 - beta2) * (grad^2 - v)
//   value -= lr_t * m / (sqrt(v) + 1e-7)
//
// m and v start at zero and are kept per parameter name (a shape change
// restarts them from zero); t counts Update calls. Not thread-safe: one
// optimizer belongs to one training loop. Update allocates only when it first
// sees a parameter.
#ifndef BNSERVE_CORE_ADAM_H_
#define BNSERVE_CORE_ADAM_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/eigen_types.h"
#include "core/optimizer.h"
#include "core/parameter_ref.h"

namespace bnserve {

class Adam : public Optimizer {
 public:
  // The book's epsilon in the denominator.
  static constexpr float kEpsilon = 1e-7f;

  // REQUIRES: learning_rate > 0, 0 <= beta1, beta2 < 1 (ValidateOptimizerConfig).
  Adam(double learning_rate, double beta1, double beta2);

  void Update(const std::vector<ParameterRef<float>>& params) override;

 private:
  const double learning_rate_;
  const double beta1_;
  const double beta2_;
  int64_t step_ = 0;
  absl::flat_hash_map<std::string, Matrix> first_moment_;
  absl::flat_hash_map<std::string, Matrix> second_moment_;
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_ADAM_H_
