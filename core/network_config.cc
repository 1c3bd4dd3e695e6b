#include "core/network_config.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bnserve {

absl::StatusOr<Activation> ParseActivation(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "relu") return Activation::kRelu;
  if (lower == "sigmoid") return Activation::kSigmoid;
  if (lower == "tanh") return Activation::kTanh;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown activation '", name, "' (expected relu, sigmoid or tanh)"));
}

const char* ActivationName(Activation activation) {
  switch (activation) {
    case Activation::kRelu:
      return "relu";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
  }
  return "unknown";
}

absl::StatusOr<WeightInit> ParseWeightInit(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  WeightInit init;
  if (lower == "he" || lower == "relu") {
    init.kind = WeightInit::Kind::kHe;
    return init;
  }
  if (lower == "xavier" || lower == "sigmoid") {
    init.kind = WeightInit::Kind::kXavier;
    return init;
  }
  double std = 0.0;
  if (!absl::SimpleAtod(lower, &std) || !std::isfinite(std) || std <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid weight init '", text,
                     "' (expected he, relu, xavier, sigmoid or a positive number)"));
  }
  init.kind = WeightInit::Kind::kStd;
  init.std = std;
  return init;
}

std::string WeightInitName(const WeightInit& init) {
  switch (init.kind) {
    case WeightInit::Kind::kHe:
      return "he";
    case WeightInit::Kind::kXavier:
      return "xavier";
    case WeightInit::Kind::kStd:
      break;
  }
  // The shortest of %.15g / %.17g that parses back to the same double, so
  // that ParseWeightInit(WeightInitName(x)) == x and 0.01 prints as "0.01".
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.15g", init.std);
  if (std::strtod(buffer, nullptr) != init.std) {
    std::snprintf(buffer, sizeof(buffer), "%.17g", init.std);
  }
  return buffer;
}

int64_t NetworkParameterCount(const NetworkConfig& config) {
  int64_t count = 0;
  int64_t fan_in = config.input_size;
  for (int size : config.hidden_sizes) {
    count += fan_in * size + size;  // W, b
    if (config.use_batchnorm) count += int64_t{4} * size;  // gamma, beta, running stats
    fan_in = size;
  }
  return count + fan_in * config.output_size + config.output_size;
}

absl::Status ValidateNetworkConfig(const NetworkConfig& config) {
  if (config.input_size <= 0 || config.input_size > kMaxInputSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input_size must be in [1, ", kMaxInputSize, "], got ", config.input_size));
  }
  if (config.hidden_sizes.size() > static_cast<size_t>(kMaxHiddenLayers)) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_sizes has ", config.hidden_sizes.size(),
                     " layers, more than the limit of ", kMaxHiddenLayers));
  }
  for (size_t i = 0; i < config.hidden_sizes.size(); ++i) {
    if (config.hidden_sizes[i] <= 0 || config.hidden_sizes[i] > kMaxLayerSize) {
      return absl::InvalidArgumentError(absl::StrCat("hidden_sizes[", i, "] must be in [1, ",
                                                     kMaxLayerSize, "], got ",
                                                     config.hidden_sizes[i]));
    }
  }
  if (config.output_size <= 0 || config.output_size > kMaxClasses) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output_size must be in [1, ", kMaxClasses, "], got ", config.output_size));
  }
  if (const int64_t parameters = NetworkParameterCount(config);
      parameters > kMaxNetworkParameters) {
    return absl::InvalidArgumentError(
        absl::StrCat("the network has ", parameters, " parameters, more than the limit of ",
                     kMaxNetworkParameters, " (hidden_sizes too large)"));
  }
  switch (config.activation) {
    case Activation::kRelu:
    case Activation::kSigmoid:
    case Activation::kTanh:
      break;
    default:
      return absl::InvalidArgumentError("activation is not a known Activation");
  }
  switch (config.weight_init.kind) {
    case WeightInit::Kind::kHe:
    case WeightInit::Kind::kXavier:
      break;
    case WeightInit::Kind::kStd:
      if (!std::isfinite(config.weight_init.std) || config.weight_init.std <= 0.0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "weight_init.std must be positive and finite, got ", config.weight_init.std));
      }
      break;
    default:
      return absl::InvalidArgumentError("weight_init.kind is not a known kind");
  }
  // Written as !(in range) so that NaN is rejected too.
  if (!(config.dropout_ratio >= 0.0 && config.dropout_ratio < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dropout_ratio must be in [0, 1), got ", config.dropout_ratio));
  }
  if (!(config.weight_decay_lambda >= 0.0 && std::isfinite(config.weight_decay_lambda))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight_decay_lambda must be >= 0 and finite, got ", config.weight_decay_lambda));
  }
  if (!(config.bn_momentum >= 0.0 && config.bn_momentum < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bn_momentum must be in [0, 1), got ", config.bn_momentum));
  }
  if (!(config.bn_eps > 0.0 && std::isfinite(config.bn_eps))) {
    return absl::InvalidArgumentError(
        absl::StrCat("bn_eps must be positive and finite, got ", config.bn_eps));
  }
  return absl::OkStatus();
}

absl::Status ValidateNetworkConfigWithOpenInput(const NetworkConfig& config) {
  if (config.input_size != 0) return ValidateNetworkConfig(config);
  NetworkConfig one_feature = config;
  one_feature.input_size = 1;
  return ValidateNetworkConfig(one_feature);
}

}  // namespace bnserve
