#include "core/momentum.h"

#include "core/optimizer_state.h"

namespace bnserve {

Momentum::Momentum(double learning_rate, double momentum)
    : learning_rate_(static_cast<float>(learning_rate)),
      momentum_(static_cast<float>(momentum)) {}

void Momentum::Update(const std::vector<ParameterRef<float>>& params) {
  for (const ParameterRef<float>& p : params) {
    Matrix& v = internal_optimizer::StateFor(p, &velocity_);
    v = momentum_ * v - learning_rate_ * *p.grad;
    p.value->noalias() += v;
  }
}

}  // namespace bnserve
