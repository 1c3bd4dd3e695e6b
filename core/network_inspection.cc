#include "core/network_inspection.h"

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

absl::StatusOr<Histogram> HistogramOf(const Matrix& values, const HistogramOptions& options,
                                      int layer, const char* what) {
  absl::StatusOr<Histogram> histogram = ComputeHistogram(
      absl::MakeConstSpan(values.data(), static_cast<size_t>(values.size())), options);
  if (!histogram.ok()) {
    return absl::Status(histogram.status().code(),
                        absl::StrCat("hidden layer ", layer, " ", what, ": ",
                                     histogram.status().message()));
  }
  return histogram;
}

}  // namespace

absl::StatusOr<std::vector<LayerHistograms>> InspectNetwork(const Network<float>& network,
                                                            const ConstMatrixRef<float>& x,
                                                            BnMode mode,
                                                            const HistogramOptions& options) {
  RETURN_IF_ERROR(ValidateHistogramOptions(options));
  std::vector<LayerHistograms> layers;
  layers.reserve(network.config().hidden_sizes.size());
  RETURN_IF_ERROR(network.VisitHiddenLayers(
      x, mode, [&](const HiddenLayerOutputs<float>& outputs) -> absl::Status {
        LayerHistograms layer;
        layer.layer = outputs.layer;
        ASSIGN_OR_RETURN(layer.affine_output,
                         HistogramOf(*outputs.affine, options, outputs.layer, "Affine output"));
        if (outputs.batchnorm != nullptr) {
          ASSIGN_OR_RETURN(layer.batchnorm_output, HistogramOf(*outputs.batchnorm, options,
                                                               outputs.layer, "BatchNorm output"));
        }
        ASSIGN_OR_RETURN(layer.activation_output, HistogramOf(*outputs.activation, options,
                                                              outputs.layer, "activation output"));
        layers.push_back(std::move(layer));
        return absl::OkStatus();
      }));
  return layers;
}

Matrix RandomNormalRows(int64_t rows, int64_t cols, uint64_t seed) {
  Matrix x(rows, cols);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  float* data = x.data();
  for (Eigen::Index i = 0; i < x.size(); ++i) data[i] = static_cast<float>(normal(rng));
  return x;
}

}  // namespace bnserve
