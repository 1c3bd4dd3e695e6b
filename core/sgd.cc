#include "core/sgd.h"

#include <cassert>

namespace bnserve {

Sgd::Sgd(double learning_rate) : learning_rate_(static_cast<float>(learning_rate)) {}

void Sgd::Update(const std::vector<ParameterRef<float>>& params) {
  for (const ParameterRef<float>& p : params) {
    assert(p.value->rows() == p.grad->rows() && p.value->cols() == p.grad->cols());
    p.value->noalias() -= learning_rate_ * *p.grad;
  }
}

}  // namespace bnserve
