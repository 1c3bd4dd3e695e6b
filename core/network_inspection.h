// Network inspection: what each hidden layer of a Network<float> does to a
// batch, as histograms of its Affine output, BatchNorm output and activation
// output (the book's activation-distribution experiments, sections 6.2.2 and
// 6.3), computed during one forward pass (Network::VisitHiddenLayers) in a
// given BnMode. The network is const: its running statistics never change.
//
//   HistogramOptions histogram;                  // 30 bins, each its own range
//   ASSIGN_OR_RETURN(std::vector<LayerHistograms> layers,
//                    InspectNetwork(network, x, BnMode::kBatchStatistics, histogram));
//
// Memory: one forward pass (EstimateForwardBytes in core/evaluation.h) and
// the histograms; layer outputs are summarized as they are produced.
//
// Stateless functions of const arguments: thread-safe.
#ifndef BNSERVE_CORE_NETWORK_INSPECTION_H_
#define BNSERVE_CORE_NETWORK_INSPECTION_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/histogram.h"
#include "core/network.h"

namespace bnserve {

// The histograms of one hidden layer's outputs over the whole batch.
struct LayerHistograms {
  int layer = 0;  // 1-based
  Histogram affine_output;
  std::optional<Histogram> batchnorm_output;  // unset without BatchNorm
  Histogram activation_output;
};

// One LayerHistograms per hidden layer, in order. InvalidArgument as
// Network::Predict (wrong feature count, empty batch, kBatchStatistics with
// one row and BatchNorm), for options ValidateHistogramOptions rejects, or
// when a layer output is not finite (the layer and output are named).
absl::StatusOr<std::vector<LayerHistograms>> InspectNetwork(const Network<float>& network,
                                                            const ConstMatrixRef<float>& x,
                                                            BnMode mode,
                                                            const HistogramOptions& options);

// `rows` x `cols` values drawn from N(0, 1) by a generator seeded with
// `seed`, row-major (the book's np.random.randn(rows, cols)).
// REQUIRES: rows >= 0, cols >= 0.
Matrix RandomNormalRows(int64_t rows, int64_t cols, uint64_t seed);

}  // namespace bnserve

#endif  // BNSERVE_CORE_NETWORK_INSPECTION_H_
