// The book's Batch Normalization experiment (Saito, "Deep Learning from
// Scratch" 6.3.2, ch06/batch_norm_test.py): a 784-100x5-10 ReLU network with
// BatchNorm and the same network without it, both initialized with the same
// N(0, weight_std^2) weights scheme and trained with SGD (lr 0.01, batch 100)
// on the same batches of the first 1,000 training images, comparing their
// training accuracy (BatchNorm in inference mode) epoch by epoch. Without
// BatchNorm a poorly scaled initialization barely learns; with it, training
// succeeds across a wide range of scales.
//
//   ASSIGN_OR_RETURN(Dataset train, LoadBuiltinDataset(dir, "mnist-digits", Split::kTrain,
//                                                       options.train_size));
//   ASSIGN_OR_RETURN(BatchNormComparison result, RunBatchNormComparison(train, options));
//
// Thread-safe (no shared state); each call trains its own two networks.
#ifndef BNSERVE_CORE_BATCHNORM_EXPERIMENT_H_
#define BNSERVE_CORE_BATCHNORM_EXPERIMENT_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dataset.h"
#include "core/network_config.h"
#include "core/trainer.h"

namespace bnserve {

struct BatchNormExperimentOptions {
  double weight_std = 0.05;   // the book's weight_init_std for both networks
  int epochs = 20;
  int batch_size = 100;
  double learning_rate = 0.01;  // SGD
  int train_size = 1000;        // the first train_size rows of the training set are used
  std::vector<int> hidden_sizes = {100, 100, 100, 100, 100};
  Activation activation = Activation::kRelu;
  // Seeds both networks' weights (the same draws for both) and the batch order
  // (the same batches for both, as in the book's side-by-side loop).
  uint64_t seed = 1;
};

// Per-epoch metrics of both networks; the two vectors have `epochs` entries.
struct BatchNormComparison {
  double weight_std = 0;
  std::vector<EpochMetrics> batchnorm;
  std::vector<EpochMetrics> plain;

  double final_batchnorm_accuracy() const {
    return batchnorm.empty() ? 0.0 : batchnorm.back().train_accuracy;
  }
  double final_plain_accuracy() const {
    return plain.empty() ? 0.0 : plain.back().train_accuracy;
  }
};

// The book's sweep: np.logspace(0, -4, num=16), 1 down to 1e-4.
std::vector<double> BookWeightStds();

// The network config of one arm of the experiment.
NetworkConfig BatchNormExperimentNetwork(const BatchNormExperimentOptions& options,
                                         bool use_batchnorm, int input_size,
                                         int num_classes);

// Trains the BatchNorm network, then the plain one, on the first
// options.train_size rows of `train` (all of them if fewer). `on_epoch` (may
// be empty) is told which network finished an epoch; `cancelled` as in
// Train(). InvalidArgument for bad options or data, Cancelled if cancelled.
absl::StatusOr<BatchNormComparison> RunBatchNormComparison(
    const Dataset& train, const BatchNormExperimentOptions& options,
    const std::function<void(bool batchnorm, const EpochMetrics&)>& on_epoch = nullptr,
    const std::function<bool()>& cancelled = nullptr);

}  // namespace bnserve

#endif  // BNSERVE_CORE_BATCHNORM_EXPERIMENT_H_
