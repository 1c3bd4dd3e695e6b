#include "core/adam.h"

#include <cmath>

#include "core/optimizer_state.h"

namespace bnserve {

Adam::Adam(double learning_rate, double beta1, double beta2)
    : learning_rate_(learning_rate), beta1_(beta1), beta2_(beta2) {}

void Adam::Update(const std::vector<ParameterRef<float>>& params) {
  ++step_;
  const double t = static_cast<double>(step_);
  // The bias correction in double: 1 - beta^t loses most digits in float.
  const float lr_t = static_cast<float>(
      learning_rate_ * std::sqrt(1.0 - std::pow(beta2_, t)) / (1.0 - std::pow(beta1_, t)));
  const float one_minus_beta1 = static_cast<float>(1.0 - beta1_);
  const float one_minus_beta2 = static_cast<float>(1.0 - beta2_);
  for (const ParameterRef<float>& p : params) {
    Matrix& m = internal_optimizer::StateFor(p, &first_moment_);
    Matrix& v = internal_optimizer::StateFor(p, &second_moment_);
    m.array() += one_minus_beta1 * (p.grad->array() - m.array());
    v.array() += one_minus_beta2 * (p.grad->array().square() - v.array());
    p.value->array() -= lr_t * m.array() / (v.array().sqrt() + kEpsilon);
  }
}

}  // namespace bnserve
