// Optimizers with the book's defaults (common/optimizer.py): SGD, Momentum,
// Nesterov, AdaGrad, RMSprop, Adam. An optimizer keeps per-parameter state
// keyed by parameter name, created on first use.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> opt, CreateOptimizer(config));
//   opt->Update(net.TrainableParameters());
//
// Not thread-safe: one optimizer belongs to one training loop.
#ifndef BNSERVE_CORE_OPTIMIZER_H_
#define BNSERVE_CORE_OPTIMIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/parameter_ref.h"

namespace bnserve {

enum class OptimizerType { kSgd, kMomentum, kNesterov, kAdaGrad, kRmsProp, kAdam };

// "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam" (case-insensitive).
absl::StatusOr<OptimizerType> ParseOptimizerType(absl::string_view name);
const char* OptimizerTypeName(OptimizerType type);

struct OptimizerConfig {
  OptimizerType type = OptimizerType::kSgd;
  double learning_rate = 0.01;
  double momentum = 0.9;     // Momentum, Nesterov
  double decay_rate = 0.99;  // RMSprop
  double beta1 = 0.9;        // Adam
  double beta2 = 0.999;      // Adam
};

// The book's default learning rate per optimizer: SGD 0.01, Momentum 0.01,
// Nesterov 0.01, AdaGrad 0.01, RMSprop 0.01, Adam 0.001.
OptimizerConfig DefaultOptimizerConfig(OptimizerType type);

// InvalidArgument for lr <= 0 or not finite, momentum / decay / betas outside [0, 1).
absl::Status ValidateOptimizerConfig(const OptimizerConfig& config);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one step to every parameter from its gradient.
  virtual void Update(const std::vector<ParameterRef<float>>& params) = 0;
};

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerConfig& config);

}  // namespace bnserve

#endif  // BNSERVE_CORE_OPTIMIZER_H_
