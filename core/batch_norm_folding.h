// FoldBatchNorm: the network that answers INFERENCE-mode predictions with
// the BatchNorm layers folded into the Affine layers before them.
//
// In inference mode a BatchNorm is a fixed per-feature affine map
// (core/batch_norm.h), so Affine -> BatchNorm is one Affine:
//   k  = gamma / sqrt(running_var + eps)          (per feature)
//   W' = W * diag(k)                              (column j of W times k_j)
//   b' = (b - running_mean) * k + beta
// The folded network has the same hidden sizes, activation and dropout (at
// inference the book's dropout scales by 1 - ratio; that is kept) and no
// BatchNorm layers, so a forward pass skips one pass over every hidden
// layer's output. The fold is computed in double and each W', b' value
// rounded once to T.
//
//   ASSIGN_OR_RETURN(Network<float> folded, FoldBatchNorm(network));
//   folded.PredictProbabilities(x, BnMode::kInference);   // ~ network's, to rounding
//
// The folded network is for inference only: it has no BatchNorm, so
// BnMode::kBatchStatistics gives the same answers as kInference there (serve
// BATCH_STATISTICS with the unfolded network), and its config has no weight
// decay (its W' are not the trained W, so a decay term of them would mean
// nothing). Rounding: folded and unfolded differ by the rounding of each
// form; where k is large and the Affine output sits close to running_mean
// (tiny variances, huge gammas), both forms lose the same relative precision
// to cancellation, and in float they may then differ visibly from each
// other. In double they agree to ~1e-12.
//
// A pure function of its argument: thread-safe (Network's const methods are).
#ifndef BNSERVE_CORE_BATCH_NORM_FOLDING_H_
#define BNSERVE_CORE_BATCH_NORM_FOLDING_H_

#include "absl/status/statusor.h"
#include "core/network.h"

namespace bnserve {

// The folded network of `network` (its config with use_batchnorm = false and
// weight_decay_lambda = 0; tensors W1, b1, ..., W{L}, b{L}). A network without
// BatchNorm comes back as an equal copy. InvalidArgument if a running_var +
// eps is not positive or a folded value is not finite in T (e.g. a gamma so
// large that W * k overflows float); the message names the layer.
template <typename T>
absl::StatusOr<Network<T>> FoldBatchNorm(const Network<T>& network);

extern template absl::StatusOr<Network<float>> FoldBatchNorm(const Network<float>&);
extern template absl::StatusOr<Network<double>> FoldBatchNorm(const Network<double>&);

}  // namespace bnserve

#endif  // BNSERVE_CORE_BATCH_NORM_FOLDING_H_
