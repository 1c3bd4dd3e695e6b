#include "core/optimizer.h"

#include <cmath>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/adagrad.h"
#include "core/adam.h"
#include "core/momentum.h"
#include "core/nesterov.h"
#include "core/rmsprop.h"
#include "core/sgd.h"
#include "core/status_macros.h"

namespace bnserve {
namespace {

struct NamedType {
  const char* name;
  OptimizerType type;
};

constexpr NamedType kOptimizerTypes[] = {
    {"sgd", OptimizerType::kSgd},         {"momentum", OptimizerType::kMomentum},
    {"nesterov", OptimizerType::kNesterov}, {"adagrad", OptimizerType::kAdaGrad},
    {"rmsprop", OptimizerType::kRmsProp}, {"adam", OptimizerType::kAdam},
};

// OK if 0 <= value < 1, else InvalidArgument naming `field`.
absl::Status CheckUnitInterval(const char* field, double value) {
  if (!(value >= 0.0 && value < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer ", field, " must be in [0, 1), got ", value));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OptimizerType> ParseOptimizerType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const NamedType& entry : kOptimizerTypes) {
    if (lower == entry.name) return entry.type;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown optimizer \"", name,
      "\"; expected one of sgd, momentum, nesterov, adagrad, rmsprop, adam"));
}

const char* OptimizerTypeName(OptimizerType type) {
  for (const NamedType& entry : kOptimizerTypes) {
    if (entry.type == type) return entry.name;
  }
  return "unknown";
}

OptimizerConfig DefaultOptimizerConfig(OptimizerType type) {
  OptimizerConfig config;
  config.type = type;
  config.learning_rate = type == OptimizerType::kAdam ? 0.001 : 0.01;
  return config;
}

absl::Status ValidateOptimizerConfig(const OptimizerConfig& config) {
  bool known_type = false;
  for (const NamedType& entry : kOptimizerTypes) known_type |= entry.type == config.type;
  if (!known_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown optimizer type ", static_cast<int>(config.type)));
  }
  if (!std::isfinite(config.learning_rate) || config.learning_rate <= 0.0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer learning_rate must be positive and finite, got ",
        config.learning_rate));
  }
  RETURN_IF_ERROR(CheckUnitInterval("momentum", config.momentum));
  RETURN_IF_ERROR(CheckUnitInterval("decay_rate", config.decay_rate));
  RETURN_IF_ERROR(CheckUnitInterval("beta1", config.beta1));
  RETURN_IF_ERROR(CheckUnitInterval("beta2", config.beta2));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const OptimizerConfig& config) {
  RETURN_IF_ERROR(ValidateOptimizerConfig(config));
  switch (config.type) {
    case OptimizerType::kSgd:
      return std::unique_ptr<Optimizer>(std::make_unique<Sgd>(config.learning_rate));
    case OptimizerType::kMomentum:
      return std::unique_ptr<Optimizer>(
          std::make_unique<Momentum>(config.learning_rate, config.momentum));
    case OptimizerType::kNesterov:
      return std::unique_ptr<Optimizer>(
          std::make_unique<Nesterov>(config.learning_rate, config.momentum));
    case OptimizerType::kAdaGrad:
      return std::unique_ptr<Optimizer>(std::make_unique<AdaGrad>(config.learning_rate));
    case OptimizerType::kRmsProp:
      return std::unique_ptr<Optimizer>(
          std::make_unique<RmsProp>(config.learning_rate, config.decay_rate));
    case OptimizerType::kAdam:
      return std::unique_ptr<Optimizer>(
          std::make_unique<Adam>(config.learning_rate, config.beta1, config.beta2));
  }
  return absl::InvalidArgumentError("unknown optimizer type");
}

}  // namespace bnserve
