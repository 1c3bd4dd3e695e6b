// Predictor: the one inference path behind every protocol bnserve speaks —
// bnserve.v1 Predict, and the Open Inference Protocol's ModelInfer over gRPC
// and over HTTP/REST. Each front end parses its request into a ModelRef, a
// row-major [rows, features] matrix and a BnMode, and calls Predict; the
// checks (row limit, finite values, feature count), the network from the
// ModelCatalog and the numbers are therefore the same, bit for bit, whatever
// the protocol. INFERENCE runs the version's BatchNorm-folded network when
// the catalog folds (LoadedModel::NetworkFor), BATCH_STATISTICS the stored
// one.
//
//   Predictor predictor(&catalog, /*max_batch=*/10000);
//   RETURN_IF_ERROR(predictor.CheckRows(rows));      // before copying input
//   ASSIGN_OR_RETURN(Prediction p, predictor.Predict(ref, x, BnMode::kInference));
//
// Thread-safety: thread-safe (the catalog is; networks are const).
#ifndef BNSERVE_SERVER_PREDICTOR_H_
#define BNSERVE_SERVER_PREDICTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bnserve/v1/types.pb.h"
#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/network.h"
#include "server/model_catalog.h"

namespace bnserve {

// The answer for a batch of rows.
struct Prediction {
  // The model and version that answered.
  std::string model_name;
  int version = 0;
  // [rows, classes]; each row sums to 1.
  Matrix probabilities;
  // argmax of each row.
  std::vector<int32_t> predicted_classes;
  // Time spent in the forward pass alone (Triton's "compute infer").
  absl::Duration compute_duration;
};

struct PredictorOptions {
  // A batch of more rows is ResourceExhausted.
  int max_batch = 10000;
  // A response larger than this (rows x classes probabilities and rows
  // classes, in bytes: what the client would receive) is ResourceExhausted
  // before any computing; the server sets its gRPC message limit.
  int64_t max_response_bytes = int64_t{64} << 20;
  // A forward pass whose buffers (EstimateForwardBytes) exceed this is
  // ResourceExhausted before it allocates them.
  int64_t max_forward_bytes = int64_t{4096} << 20;
};

class Predictor {
 public:
  // `catalog` must outlive the predictor.
  Predictor(ModelCatalog* catalog, const PredictorOptions& options)
      : catalog_(catalog), options_(options) {}
  Predictor(ModelCatalog* catalog, int max_batch)
      : Predictor(catalog, PredictorOptions{max_batch}) {}

  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  int max_batch() const { return options_.max_batch; }

  // ResourceExhausted for more rows than max_batch(). Front ends call it as
  // soon as they know the row count, before converting any input.
  absl::Status CheckRows(int64_t rows) const;

  // Class probabilities of `rows` under the version `model` selects.
  // InvalidArgument: non-finite input, a feature count other than the
  // model's input size, an empty batch, BATCH_STATISTICS with one row,
  // inputs so large that the probabilities are not finite;
  // ResourceExhausted as CheckRows, and for a response or a forward pass
  // beyond the options' limits (the message names the limit); the catalog's
  // errors (NotFound for an unknown model, version or alias).
  absl::StatusOr<Prediction> Predict(const v1::ModelRef& model, const ConstMatrixRef<float>& rows,
                                     BnMode mode) const;

 private:
  ModelCatalog* const catalog_;
  const PredictorOptions options_;
};

}  // namespace bnserve

#endif  // BNSERVE_SERVER_PREDICTOR_H_
