#include "core/adagrad.h"

#include "core/optimizer_state.h"

namespace bnserve {

AdaGrad::AdaGrad(double learning_rate)
    : learning_rate_(static_cast<float>(learning_rate)) {}

void AdaGrad::Update(const std::vector<ParameterRef<float>>& params) {
  for (const ParameterRef<float>& p : params) {
    Matrix& h = internal_optimizer::StateFor(p, &squared_sum_);
    h.array() += p.grad->array().square();
    p.value->array() -= learning_rate_ * p.grad->array() / (h.array().sqrt() + kEpsilon);
  }
}

}  // namespace bnserve
