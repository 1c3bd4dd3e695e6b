// Evaluation: how well a Network<float> classifies a labelled Dataset — mean
// loss, accuracy, per-class accuracy and the confusion matrix — computed in
// slices of rows so that a large data set never holds every layer's
// activations at once, and the memory estimate of one forward pass.
//
//   EvaluationOptions options;                 // kInference, 8192-row slices
//   options.max_pass_bytes = limit;            // optional: refuse a bigger pass
//   ASSIGN_OR_RETURN(Evaluation result, EvaluateNetwork(network, data, options));
//
// In kInference mode each row's output depends on that row alone, so the
// slices give exactly the result of one pass over every row. In
// kBatchStatistics mode the statistics are those of the whole data set, so it
// runs as one pass.
//
// Stateless functions of const arguments: thread-safe (Network's const
// methods may run concurrently).
#ifndef BNSERVE_CORE_EVALUATION_H_
#define BNSERVE_CORE_EVALUATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/bn_mode.h"
#include "core/dataset.h"
#include "core/network.h"
#include "core/network_config.h"

namespace bnserve {

// Rows per forward pass when evaluating in kInference mode (the trainer's
// per-epoch accuracy included).
inline constexpr int kEvaluationSliceRows = 8192;

// Floats one forward pass (Network::Predict) holds per row: three matrices
// of the network's widest layer.
int64_t ForwardFloatsPerRow(const NetworkConfig& network);

// An upper bound, in bytes, of the buffers of one evaluation pass of `rows`
// rows through `network` (the input itself not included): the forward pass
// and the probabilities. INT64_MAX when that does not fit in int64.
int64_t EstimateForwardBytes(const NetworkConfig& network, int64_t rows);

// EstimateForwardBytes plus the classes x classes confusion matrix: what one
// evaluation pass of `rows` rows holds at once.
int64_t EstimateEvaluationBytes(const NetworkConfig& network, int64_t rows);

// InvalidArgument unless `data` fits `network`: its feature count is the
// network's input_size, it has one label per row, and every label is in
// [0, output_size). `role` names the data in the message ("training set").
absl::Status CheckDatasetFits(const Dataset& data, const NetworkConfig& network,
                              absl::string_view role);

struct EvaluationOptions {
  BnMode mode = BnMode::kInference;
  // Rows per forward pass in kInference mode (values < 1 count as 1).
  int slice_rows = kEvaluationSliceRows;
  // One pass whose EstimateEvaluationBytes exceeds this is ResourceExhausted.
  int64_t max_pass_bytes = INT64_MAX;
};

struct Evaluation {
  int64_t num_examples = 0;
  int num_classes = 0;  // the network's output_size
  // Mean cross-entropy of the true class, the book's -log(p + 1e-7).
  double loss = 0;
  double accuracy = 0;
  // Per label: the fraction of its rows predicted right (0 for a label that
  // does not occur).
  std::vector<double> per_class_accuracy;
  // num_classes x num_classes, row-major: confusion[label * num_classes + predicted].
  std::vector<int64_t> confusion;
};

// Evaluates `network` on all of `data`. InvalidArgument for empty data, data
// that do not fit the network (CheckDatasetFits), or a kBatchStatistics pass
// of one row with BatchNorm; ResourceExhausted when one pass would exceed
// options.max_pass_bytes (nothing is allocated then).
absl::StatusOr<Evaluation> EvaluateNetwork(const Network<float>& network, const Dataset& data,
                                           const EvaluationOptions& options);

// The fraction of rows of `data` classified right, BatchNorm in inference
// mode, in slices of kEvaluationSliceRows (Network::Accuracy per slice).
// Errors as Network::Accuracy.
absl::StatusOr<double> EvaluateAccuracy(const Network<float>& network, const Dataset& data);

}  // namespace bnserve

#endif  // BNSERVE_CORE_EVALUATION_H_
