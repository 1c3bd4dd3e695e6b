#include "core/rmsprop.h"

#include "core/optimizer_state.h"

namespace bnserve {

RmsProp::RmsProp(double learning_rate, double decay_rate)
    : learning_rate_(static_cast<float>(learning_rate)),
      decay_rate_(static_cast<float>(decay_rate)) {}

void RmsProp::Update(const std::vector<ParameterRef<float>>& params) {
  const float new_weight = 1.0f - decay_rate_;
  for (const ParameterRef<float>& p : params) {
    Matrix& h = internal_optimizer::StateFor(p, &mean_square_);
    h.array() = decay_rate_ * h.array() + new_weight * p.grad->array().square();
    p.value->array() -= learning_rate_ * p.grad->array() / (h.array().sqrt() + kEpsilon);
  }
}

}  // namespace bnserve
