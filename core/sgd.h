// Sgd: plain stochastic gradient descent, as the book's common/optimizer.py SGD:
//
//   value -= lr * grad
//
// Stateless. Not thread-safe: one optimizer belongs to one training loop.
#ifndef BNSERVE_CORE_SGD_H_
#define BNSERVE_CORE_SGD_H_

#include <vector>

#include "core/optimizer.h"
#include "core/parameter_ref.h"

namespace bnserve {

class Sgd : public Optimizer {
 public:
  // REQUIRES: learning_rate > 0 (checked by ValidateOptimizerConfig).
  explicit Sgd(double learning_rate);

  void Update(const std::vector<ParameterRef<float>>& params) override;

 private:
  const float learning_rate_;
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_SGD_H_
