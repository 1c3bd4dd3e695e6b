// Momentum: SGD with momentum, as the book's common/optimizer.py Momentum:
//
//   v = momentum * v - lr * grad
//   value += v
//
// v starts at zero and is kept per parameter name. A parameter whose shape
// differs from its stored state (a different network under the same names)
// starts again from zero state. Not thread-safe: one optimizer belongs to one
// training loop. Update allocates only when it first sees a parameter.
#ifndef BNSERVE_CORE_MOMENTUM_H_
#define BNSERVE_CORE_MOMENTUM_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/eigen_types.h"
#include "core/optimizer.h"
#include "core/parameter_ref.h"

namespace bnserve {

class Momentum : public Optimizer {
 public:
  // REQUIRES: learning_rate > 0, 0 <= momentum < 1 (ValidateOptimizerConfig).
  Momentum(double learning_rate, double momentum);

  void Update(const std::vector<ParameterRef<float>>& params) override;

 private:
  const float learning_rate_;
  const float momentum_;
  absl::flat_hash_map<std::string, Matrix> velocity_;
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_MOMENTUM_H_
