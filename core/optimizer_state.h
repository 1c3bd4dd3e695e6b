// Internal helper of the optimizers: per-parameter state tensors keyed by
// parameter name, created as zeros on first use. Not thread-safe.
#ifndef BNSERVE_CORE_OPTIMIZER_STATE_H_
#define BNSERVE_CORE_OPTIMIZER_STATE_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "core/eigen_types.h"
#include "core/parameter_ref.h"

namespace bnserve {
namespace internal_optimizer {

// The state tensor for `param` in `states`, zero-filled (re)created when it
// is missing or its shape differs from the parameter's. The reference stays
// valid until the next call on the same map.
inline Matrix& StateFor(const ParameterRef<float>& param,
                        absl::flat_hash_map<std::string, Matrix>* states) {
  Matrix& state = (*states)[param.name];
  if (state.rows() != param.value->rows() || state.cols() != param.value->cols()) {
    state.setZero(param.value->rows(), param.value->cols());
  }
  return state;
}

}  // namespace internal_optimizer
}  // namespace bnserve

#endif  // BNSERVE_CORE_OPTIMIZER_STATE_H_
