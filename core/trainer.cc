#include "core/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/evaluation.h"
#include "core/affine.h"
#include "core/logging.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

// A uniform draw from [0, bound) that depends only on the generator's output
// (std::uniform_int_distribution and std::shuffle differ between standard
// libraries; this keeps a seed's batch order the same everywhere).
uint64_t UniformBelow(uint64_t bound, std::mt19937_64* rng) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // multiple of bound
  uint64_t draw;
  do {
    draw = (*rng)();
  } while (draw >= limit);
  return draw % bound;
}

// Fisher-Yates shuffle of `order` in place.
void Shuffle(std::vector<int>* order, std::mt19937_64* rng) {
  for (size_t i = order->size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(UniformBelow(i, rng));
    std::swap((*order)[i - 1], (*order)[j]);
  }
}

bool NeedsBatchOfTwo(const NetworkConfig& network) {
  return network.use_batchnorm && !network.hidden_sizes.empty();
}

}  // namespace

absl::Status ValidateTrainerOptions(const TrainerOptions& options,
                                    const NetworkConfig& network) {
  if (options.epochs < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("epochs must be at least 1, got ", options.epochs));
  }
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be at least 1, got ", options.batch_size));
  }
  if (options.batch_size == 1 && NeedsBatchOfTwo(network)) {
    return absl::InvalidArgumentError(
        "batch_size must be at least 2 with BatchNorm (batch statistics of one sample)");
  }
  return ValidateOptimizerConfig(options.optimizer);
}

int EffectiveBatchSize(int batch_size, int64_t train_rows) {
  return static_cast<int>(std::min<int64_t>(batch_size, train_rows));
}

int64_t RowsPerEpoch(int batch_size, int64_t train_rows) {
  const int64_t batch = EffectiveBatchSize(batch_size, train_rows);
  return std::max<int64_t>(1, train_rows / batch) * batch;
}

int64_t EstimateTrainingBytes(const NetworkConfig& network, int batch_size) {
  int64_t hidden_sum = 0;
  for (int size : network.hidden_sizes) hidden_sum += size;
  // Per batch row: its features; per hidden unit the Affine, BatchNorm,
  // activation and dropout outputs, BatchNorm's normalized input, the dropout
  // mask and two gradients; per class the scores, probabilities and gradient.
  const int64_t per_row = network.input_size + 8 * hidden_sum + 3 * int64_t{network.output_size};
  // The per-epoch accuracy runs one forward pass over a slice.
  const int64_t evaluation = int64_t{kEvaluationSliceRows} * ForwardFloatsPerRow(network);
  // The packing buffers the training products share (the largest need).
  const int64_t batch = std::max(batch_size, 0);
  int64_t workspaces = 0;
  int64_t fan_in = network.input_size;
  std::vector<int> fan_outs = network.hidden_sizes;
  fan_outs.push_back(network.output_size);
  for (int fan_out : fan_outs) {
    workspaces =
        std::max(workspaces, Affine<float>::TrainingWorkspaceScalars(batch, fan_in, fan_out));
    fan_in = fan_out;
  }
  const int64_t floats =
      4 * NetworkParameterCount(network) + batch * per_row + evaluation + workspaces;
  return floats * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::vector<EpochMetrics>> Train(
    Network<float>* network, const Dataset& train, const Dataset& validation,
    const TrainerOptions& options,
    const std::function<void(const EpochMetrics&)>& on_epoch,
    const std::function<bool()>& cancelled) {
  if (network == nullptr) return absl::InvalidArgumentError("no network to train");
  const NetworkConfig& config = network->config();
  RETURN_IF_ERROR(ValidateTrainerOptions(options, config));
  if (train.size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat("training set ", train.name, " is empty"));
  }
  RETURN_IF_ERROR(CheckDatasetFits(train, config, "training set"));
  if (validation.size() > 0) {
    RETURN_IF_ERROR(CheckDatasetFits(validation, config, "validation set"));
  }
  const int batch_size = EffectiveBatchSize(options.batch_size, train.size());
  if (batch_size < 2 && NeedsBatchOfTwo(config)) {
    return absl::InvalidArgumentError(
        "training with BatchNorm needs at least 2 training samples");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer, CreateOptimizer(options.optimizer));

  const int iterations_per_epoch =
      static_cast<int>(RowsPerEpoch(options.batch_size, train.size()) / batch_size);
  std::mt19937_64 rng(options.seed);
  std::vector<int> order(static_cast<size_t>(train.size()));
  std::iota(order.begin(), order.end(), 0);
  Matrix batch_x(batch_size, train.feature_size());
  Labels batch_t(batch_size);
  // Stable while `network` lives and is not moved: fetched once, not per step.
  const std::vector<ParameterRef<float>> parameters = network->TrainableParameters();
  std::vector<EpochMetrics> history;
  history.reserve(static_cast<size_t>(options.epochs));
  bool warned_diverged = false;

  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    Shuffle(&order, &rng);
    double loss_sum = 0;
    for (int it = 0; it < iterations_per_epoch; ++it) {
      if (cancelled && cancelled()) {
        return absl::CancelledError(absl::StrCat("training cancelled in epoch ", epoch,
                                                 " before iteration ", it + 1));
      }
      const int* rows = order.data() + static_cast<ptrdiff_t>(it) * batch_size;
      for (int r = 0; r < batch_size; ++r) {
        batch_x.row(r) = train.features.row(rows[r]);
        batch_t(r) = train.labels(rows[r]);
      }
      ASSIGN_OR_RETURN(float loss, network->ComputeGradients(batch_x, batch_t, &rng));
      loss_sum += loss;
      optimizer->Update(parameters);
    }

    EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.train_loss = loss_sum / iterations_per_epoch;
    ASSIGN_OR_RETURN(metrics.train_accuracy, EvaluateAccuracy(*network, train));
    if (validation.size() > 0) {
      ASSIGN_OR_RETURN(metrics.test_accuracy, EvaluateAccuracy(*network, validation));
    }
    metrics.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!std::isfinite(metrics.train_loss) && !warned_diverged) {
      BNSERVE_LOG(WARNING) << "epoch " << epoch << ": training loss is "
                           << metrics.train_loss << " (diverged; not repeated)";
      warned_diverged = true;
    }
    history.push_back(metrics);
    if (on_epoch) on_epoch(metrics);
  }
  return history;
}

}  // namespace bnserve
