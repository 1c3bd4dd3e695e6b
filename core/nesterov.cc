#include "core/nesterov.h"

#include "core/optimizer_state.h"

namespace bnserve {

Nesterov::Nesterov(double learning_rate, double momentum)
    : learning_rate_(static_cast<float>(learning_rate)),
      momentum_(static_cast<float>(momentum)) {}

void Nesterov::Update(const std::vector<ParameterRef<float>>& params) {
  const float momentum_squared = momentum_ * momentum_;
  const float grad_scale = (1.0f + momentum_) * learning_rate_;
  for (const ParameterRef<float>& p : params) {
    Matrix& v = internal_optimizer::StateFor(p, &velocity_);
    v = momentum_ * v - learning_rate_ * *p.grad;
    p.value->noalias() += momentum_squared * v - grad_scale * *p.grad;
  }
}

}  // namespace bnserve
