// A named trainable tensor and its gradient, as handed to an Optimizer.
// Non-owning pointers into a Network: valid, and safe to use, only while that
// network lives and no other thread is training it.
#ifndef BNSERVE_CORE_PARAMETER_REF_H_
#define BNSERVE_CORE_PARAMETER_REF_H_

#include <string>

#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
struct ParameterRef {
  std::string name;          // e.g. "W1", "gamma3"
  MatrixT<T>* value;         // updated in place by the optimizer
  const MatrixT<T>* grad;    // same shape as *value
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_PARAMETER_REF_H_
