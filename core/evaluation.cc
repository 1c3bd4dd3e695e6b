#include "core/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace bnserve {

namespace {

int64_t WidestLayer(const NetworkConfig& network) {
  int64_t widest = network.output_size;
  for (int size : network.hidden_sizes) widest = std::max<int64_t>(widest, size);
  return widest;
}

}  // namespace

int64_t ForwardFloatsPerRow(const NetworkConfig& network) { return 3 * WidestLayer(network); }

int64_t EstimateForwardBytes(const NetworkConfig& network, int64_t rows) {
  // The forward pass, and the probabilities (no wider than the widest layer).
  const int64_t floats = ForwardFloatsPerRow(network) + WidestLayer(network);
  if (rows > 0 && floats > INT64_MAX / static_cast<int64_t>(sizeof(float)) / rows) {
    return INT64_MAX;
  }
  return rows * floats * static_cast<int64_t>(sizeof(float));
}

absl::Status CheckDatasetFits(const Dataset& data, const NetworkConfig& network,
                              absl::string_view role) {
  const std::string name =
      data.name.empty() ? std::string(role) : absl::StrCat(role, " ", data.name);
  if (data.feature_size() != network.input_size) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has ", data.feature_size(),
                                                   " features, the network expects ",
                                                   network.input_size));
  }
  if (data.labels.size() != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has ", data.size(), " rows but ",
                                                   data.labels.size(), " labels"));
  }
  for (Eigen::Index i = 0; i < data.labels.size(); ++i) {
    if (data.labels(i) < 0 || data.labels(i) >= network.output_size) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": label ", data.labels(i),
                                                     " of row ", i, " is outside [0, ",
                                                     network.output_size, ")"));
    }
  }
  return absl::OkStatus();
}

int64_t EstimateEvaluationBytes(const NetworkConfig& network, int64_t rows) {
  const int64_t confusion_bytes =
      int64_t{network.output_size} * network.output_size * int64_t{sizeof(int64_t)};
  return std::min<int64_t>(EstimateForwardBytes(network, rows), INT64_MAX - confusion_bytes) +
         confusion_bytes;
}

absl::StatusOr<Evaluation> EvaluateNetwork(const Network<float>& network, const Dataset& data,
                                           const EvaluationOptions& options) {
  if (data.size() == 0) return absl::InvalidArgumentError("the evaluation data are empty");
  const NetworkConfig& config = network.config();
  RETURN_IF_ERROR(CheckDatasetFits(data, config, "evaluation data"));
  const int64_t n_rows = data.size();
  const int64_t slice_rows =
      options.mode == BnMode::kInference ? std::max(1, options.slice_rows) : n_rows;
  const int64_t pass_rows = std::min(n_rows, slice_rows);
  const int64_t pass_bytes = EstimateEvaluationBytes(config, pass_rows);
  if (pass_bytes > options.max_pass_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "evaluating ", pass_rows, " rows in one pass needs about ", pass_bytes >> 20,
        " MiB, over the server's limit of ", options.max_pass_bytes >> 20, " MiB",
        options.mode == BnMode::kBatchStatistics
            ? " (BATCH_STATISTICS uses the whole data set as one batch: evaluate "
              "fewer rows or use INFERENCE)"
            : ""));
  }

  const int num_classes = config.output_size;
  Evaluation result;
  result.num_examples = n_rows;
  result.num_classes = num_classes;
  result.confusion.assign(static_cast<size_t>(num_classes) * num_classes, 0);
  std::vector<int64_t> per_class_total(num_classes, 0);
  double loss_sum = 0;
  int64_t correct = 0;
  for (int64_t start = 0; start < n_rows; start += slice_rows) {
    const Eigen::Index rows = static_cast<Eigen::Index>(std::min(slice_rows, n_rows - start));
    ASSIGN_OR_RETURN(Matrix probabilities, network.PredictProbabilities(
                                               data.features.middleRows(start, rows),
                                               options.mode));
    for (Eigen::Index r = 0; r < rows; ++r) {
      Eigen::Index predicted = 0;
      probabilities.row(r).maxCoeff(&predicted);
      const int label = data.labels(start + r);
      // The book's cross_entropy_error: -log(p + 1e-7).
      loss_sum -= std::log(static_cast<double>(probabilities(r, label)) + 1e-7);
      ++result.confusion[static_cast<size_t>(label) * num_classes + predicted];
      ++per_class_total[label];
      if (predicted == label) ++correct;
    }
  }
  const double n = static_cast<double>(n_rows);
  result.loss = loss_sum / n;
  result.accuracy = correct / n;
  result.per_class_accuracy.reserve(num_classes);
  for (int c = 0; c < num_classes; ++c) {
    const int64_t total = per_class_total[c];
    const int64_t right = result.confusion[static_cast<size_t>(c) * num_classes + c];
    result.per_class_accuracy.push_back(total == 0 ? 0.0 : static_cast<double>(right) / total);
  }
  return result;
}

absl::StatusOr<double> EvaluateAccuracy(const Network<float>& network, const Dataset& data) {
  const int n = data.size();
  if (n <= kEvaluationSliceRows) {
    return network.Accuracy(data.features, data.labels, BnMode::kInference);
  }
  double correct = 0;
  for (int start = 0; start < n; start += kEvaluationSliceRows) {
    const int rows = std::min(kEvaluationSliceRows, n - start);
    const Labels labels = data.labels.segment(start, rows);
    ASSIGN_OR_RETURN(double accuracy,
                     network.Accuracy(data.features.middleRows(start, rows), labels,
                                      BnMode::kInference));
    correct += accuracy * rows;
  }
  return correct / n;
}

}  // namespace bnserve
