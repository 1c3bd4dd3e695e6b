// Which statistics a BatchNorm layer normalizes with outside training.
// An enum: no state, nothing to synchronize.
#ifndef BNSERVE_CORE_BN_MODE_H_
#define BNSERVE_CORE_BN_MODE_H_

namespace bnserve {

enum class BnMode {
  // The running mean and variance kept during training (the default for serving).
  kInference,
  // The batch's own mean and variance, as in training; running statistics unchanged.
  kBatchStatistics,
};

}  // namespace bnserve

#endif  // BNSERVE_CORE_BN_MODE_H_
