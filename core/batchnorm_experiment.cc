#include "core/batchnorm_experiment.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/network.h"
#include "core/optimizer.h"
#include "core/status_macros.h"

namespace bnserve {

std::vector<double> BookWeightStds() {
  constexpr int kCount = 16;
  std::vector<double> stds;
  stds.reserve(kCount);
  for (int i = 0; i < kCount; ++i) stds.push_back(std::pow(10.0, -4.0 * i / (kCount - 1)));
  return stds;
}

NetworkConfig BatchNormExperimentNetwork(const BatchNormExperimentOptions& options,
                                         bool use_batchnorm, int input_size,
                                         int num_classes) {
  NetworkConfig config;
  config.input_size = input_size;
  config.hidden_sizes = options.hidden_sizes;
  config.output_size = num_classes;
  config.activation = options.activation;
  config.weight_init.kind = WeightInit::Kind::kStd;
  config.weight_init.std = options.weight_std;
  config.use_batchnorm = use_batchnorm;
  return config;
}

absl::StatusOr<BatchNormComparison> RunBatchNormComparison(
    const Dataset& train, const BatchNormExperimentOptions& options,
    const std::function<void(bool batchnorm, const EpochMetrics&)>& on_epoch,
    const std::function<bool()>& cancelled) {
  if (options.train_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("train_size must be positive, got ", options.train_size));
  }
  const Dataset subset = TakeFirst(train, options.train_size);
  TrainerOptions trainer;
  trainer.epochs = options.epochs;
  trainer.batch_size = options.batch_size;
  trainer.seed = options.seed;
  trainer.optimizer = DefaultOptimizerConfig(OptimizerType::kSgd);
  trainer.optimizer.learning_rate = options.learning_rate;

  BatchNormComparison result;
  result.weight_std = options.weight_std;
  for (bool use_batchnorm : {true, false}) {
    const NetworkConfig config = BatchNormExperimentNetwork(
        options, use_batchnorm, subset.feature_size(), subset.num_classes);
    ASSIGN_OR_RETURN(Network<float> network, Network<float>::Create(config, options.seed));
    std::function<void(const EpochMetrics&)> report;
    if (on_epoch) {
      report = [&on_epoch, use_batchnorm](const EpochMetrics& m) { on_epoch(use_batchnorm, m); };
    }
    ASSIGN_OR_RETURN(std::vector<EpochMetrics> history,
                     Train(&network, subset, Dataset(), trainer, report, cancelled));
    (use_batchnorm ? result.batchnorm : result.plain) = std::move(history);
  }
  return result;
}

}  // namespace bnserve
