// Nesterov: Nesterov's accelerated gradient in the form of the book's
// common/optimizer.py Nesterov (http://arxiv.org/abs/1212.0901):
//
//   v = momentum * v - lr * grad
//   value += momentum^2 * v - (1 + momentum) * lr * grad
//
// v starts at zero and is kept per parameter name (a shape change restarts
// it from zero). Not thread-safe: one optimizer belongs to one training loop.
// Update allocates only when it first sees a parameter.
#ifndef BNSERVE_CORE_NESTEROV_H_
#define BNSERVE_CORE_NESTEROV_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/eigen_types.h"
#include "core/optimizer.h"
#include "core/parameter_ref.h"

namespace bnserve {

class Nesterov : public Optimizer {
 public:
  // REQUIRES: learning_rate > 0, 0 <= momentum < 1 (ValidateOptimizerConfig).
  Nesterov(double learning_rate, double momentum);

  void Update(const std::vector<ParameterRef<float>>& params) override;

 private:
  const float learning_rate_;
  const float momentum_;
  absl::flat_hash_map<std::string, Matrix> velocity_;
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_NESTEROV_H_
