#include "server/predictor.h"

#include "absl/strings/str_cat.h"
#include "core/evaluation.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {

absl::Status Predictor::CheckRows(int64_t rows) const {
  if (rows > options_.max_batch) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", rows, " rows exceeds the server's maximum of ", options_.max_batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<Prediction> Predictor::Predict(const v1::ModelRef& model,
                                              const ConstMatrixRef<float>& rows,
                                              BnMode mode) const {
  RETURN_IF_ERROR(CheckRows(rows.rows()));
  RETURN_IF_ERROR(CheckFinite(rows, "inputs"));
  ASSIGN_OR_RETURN(LoadedModel loaded, catalog_->Load(model));
  const NetworkConfig& config = loaded.network->config();
  // rows <= max_batch and classes < 2^31: no overflow.
  const int64_t response_bytes =
      rows.rows() * (int64_t{config.output_size} * int64_t{sizeof(float)} + sizeof(int32_t));
  if (response_bytes > options_.max_response_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the answer for ", rows.rows(), " rows of ", config.output_size, " classes would be ",
        response_bytes >> 20, " MiB, more than the server's message limit of ",
        options_.max_response_bytes >> 20, " MiB; send fewer rows"));
  }
  const int64_t forward_bytes = EstimateForwardBytes(config, rows.rows());
  if (forward_bytes > options_.max_forward_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a forward pass of ", rows.rows(), " rows through this network needs about ",
        forward_bytes >> 20, " MiB, more than the server's limit of ",
        options_.max_forward_bytes >> 20, " MiB (--max_job_memory_mb); send fewer rows"));
  }
  Prediction prediction;
  const absl::Time start = absl::Now();
  // INFERENCE: the folded network when the catalog folds; else the stored one.
  ASSIGN_OR_RETURN(prediction.probabilities,
                   loaded.NetworkFor(mode).PredictProbabilities(rows, mode));
  prediction.compute_duration = absl::Now() - start;
  // Finite inputs can still overflow float (3e38 through a layer): say so
  // rather than answer NaN.
  if (!prediction.probabilities.allFinite()) {
    return absl::InvalidArgumentError(
        "the inputs are too large for this model: its outputs overflow float32 (not finite)");
  }
  const Matrix& probabilities = prediction.probabilities;
  prediction.predicted_classes.resize(static_cast<size_t>(probabilities.rows()));
  for (Eigen::Index r = 0; r < probabilities.rows(); ++r) {
    Eigen::Index best = 0;
    probabilities.row(r).maxCoeff(&best);
    prediction.predicted_classes[static_cast<size_t>(r)] = static_cast<int32_t>(best);
  }
  prediction.model_name = std::move(loaded.model_name);
  prediction.version = loaded.version;
  return prediction;
}

}  // namespace bnserve
