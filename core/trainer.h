// Trainer: mini-batch SGD-style training of a Network<float>, grouped into
// epochs, with per-epoch metrics, a progress callback and cancellation.
//
// Batches: each epoch draws a fresh random permutation of the training set
// (from the seeded generator) and walks it in consecutive batches of
// batch_size; an epoch is max(1, train_size / batch_size) iterations, as in
// the book (which samples each batch independently at random instead; the
// permutation sees every sample once per epoch). The same network seed,
// options and data give bit-identical parameters.
//
// Not thread-safe; `cancelled` and `on_epoch` are called on the training thread.
#ifndef BNSERVE_CORE_TRAINER_H_
#define BNSERVE_CORE_TRAINER_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/network.h"
#include "core/optimizer.h"

namespace bnserve {

// The defaults of an unset (0) epochs or batch_size in a request.
inline constexpr int kDefaultEpochs = 20;
inline constexpr int kDefaultBatchSize = 100;

struct TrainerOptions {
  int epochs = kDefaultEpochs;
  int batch_size = kDefaultBatchSize;
  uint64_t seed = 0;  // batch order and dropout masks
  OptimizerConfig optimizer;
};

struct EpochMetrics {
  int epoch = 0;               // 1-based
  double train_loss = 0;       // mean of the epoch's iteration losses
  double train_accuracy = 0;   // on the whole training set, BN in inference mode
  double test_accuracy = 0;    // on the validation set, BN in inference mode (0 if none)
  double seconds = 0;          // wall time of the epoch, evaluation included
};

// InvalidArgument for epochs < 1, batch_size < 1, batch_size == 1 with BN,
// or an invalid optimizer config. Only the options are checked against
// `network` (whose input_size may still be open, 0): the network's own
// config is ValidateNetworkConfig's.
absl::Status ValidateTrainerOptions(const TrainerOptions& options,
                                    const NetworkConfig& network);

// The rows of each batch Train really uses: batch_size, or the whole
// training set when it is smaller (a permutation cannot fill a larger batch).
int EffectiveBatchSize(int batch_size, int64_t train_rows);

// The rows one epoch of Train puts through a gradient step: its iterations
// (train_rows / EffectiveBatchSize, at least one) times that batch size. The
// remainder of a shuffled set that does not fill a batch is left out.
// REQUIRES: batch_size >= 1, train_rows >= 1.
int64_t RowsPerEpoch(int batch_size, int64_t train_rows);

// An upper bound, in bytes, of the working memory Train needs for `network`
// with batches of `batch_size` rows (the data set itself not included): the
// parameters with their gradients and up to two optimizer states, the
// training pass's buffers for one batch, the packing buffers of its matrix
// products (the largest Affine::TrainingWorkspaceScalars), and the buffers of one
// evaluation slice (kEvaluationSliceRows). A server checks it before accepting a job,
// since a request's sizes alone can ask for more memory than the machine
// has; pass the EffectiveBatchSize when the training set's size is known.
int64_t EstimateTrainingBytes(const NetworkConfig& network, int batch_size);

// Trains `network` in place. Returns every epoch's metrics, or Cancelled if
// `cancelled` (may be empty) returned true (checked before every iteration),
// or InvalidArgument for bad options or data. `validation` may be empty.
absl::StatusOr<std::vector<EpochMetrics>> Train(
    Network<float>* network, const Dataset& train, const Dataset& validation,
    const TrainerOptions& options,
    const std::function<void(const EpochMetrics&)>& on_epoch,
    const std::function<bool()>& cancelled);

}  // namespace bnserve

#endif  // BNSERVE_CORE_TRAINER_H_
