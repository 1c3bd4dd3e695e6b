#include "server/predictor.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "server/proto_convert.h"

namespace bnserve {

absl::Status Predictor::CheckRows(int64_t rows) const {
  if (rows > max_batch_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", rows, " rows exceeds the server's maximum of ", max_batch_));
  }
  return absl::OkStatus();
}

absl::StatusOr<Prediction> Predictor::Predict(const v1::ModelRef& model,
                                              const ConstMatrixRef<float>& rows,
                                              BnMode mode) const {
  RETURN_IF_ERROR(CheckRows(rows.rows()));
  RETURN_IF_ERROR(CheckFinite(rows, "inputs"));
  ASSIGN_OR_RETURN(LoadedModel loaded, catalog_->Load(model));
  Prediction prediction;
  const absl::Time start = absl::Now();
  // INFERENCE: the folded network when the catalog folds; else the stored one.
  ASSIGN_OR_RETURN(prediction.probabilities,
                   loaded.NetworkFor(mode).PredictProbabilities(rows, mode));
  prediction.compute_duration = absl::Now() - start;
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
