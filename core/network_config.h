// The architecture of a MultiLayerNetExtend network (Saito, "Deep Learning
// from Scratch", section 6.3): per hidden layer
//   Affine -> [BatchNorm] -> activation -> [Dropout]
// then a final Affine and SoftmaxWithLoss. A plain value type; thread-compatible.
#ifndef BNSERVE_CORE_NETWORK_CONFIG_H_
#define BNSERVE_CORE_NETWORK_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bnserve {

enum class Activation { kRelu, kSigmoid, kTanh };

// "relu", "sigmoid", "tanh".
absl::StatusOr<Activation> ParseActivation(absl::string_view name);
const char* ActivationName(Activation activation);

// How the Affine weights are drawn: N(0, stddev^2) with
//   kStd:    stddev = std (the book's numeric weight_init_std),
//   kHe:     stddev = sqrt(2 / fan_in)  (the book's 'relu' / 'he'),
//   kXavier: stddev = sqrt(1 / fan_in)  (the book's 'sigmoid' / 'xavier').
// Biases start at 0, gamma at 1, beta at 0.
struct WeightInit {
  enum class Kind { kStd, kHe, kXavier };
  Kind kind = Kind::kStd;
  double std = 0.01;  // used only when kind == kStd
};

// "he", "relu", "xavier", "sigmoid", or a positive number such as "0.05".
absl::StatusOr<WeightInit> ParseWeightInit(absl::string_view text);
std::string WeightInitName(const WeightInit& init);

struct NetworkConfig {
  int input_size = 784;
  std::vector<int> hidden_sizes = {100, 100, 100, 100, 100};
  int output_size = 10;
  Activation activation = Activation::kRelu;
  WeightInit weight_init;
  bool use_batchnorm = true;
  // Dropout after each hidden activation when > 0 (the book's dropout_ration).
  double dropout_ratio = 0.0;
  // L2 weight decay: loss += 0.5 * lambda * sum(W^2) over every Affine W.
  double weight_decay_lambda = 0.0;
  // BatchNorm: running = momentum * running + (1 - momentum) * batch.
  double bn_momentum = 0.9;
  // BatchNorm: std = sqrt(var + eps). The book's 10e-7.
  double bn_eps = 1e-6;
};

// Size limits. A config comes from requests (Train, ImportModel), and the
// network allocates its tensors from the config alone: without limits one
// request could ask for terabytes (an uncaught std::bad_alloc or the OOM
// killer ends the process). Far above the book's networks (784-100x5-10 has
// 0.12 M parameters).
inline constexpr int kMaxHiddenLayers = 100;
inline constexpr int kMaxInputSize = 1 << 20;   // features per sample
inline constexpr int kMaxLayerSize = 1 << 14;   // units of a hidden layer
// Classes (output_size): an evaluation keeps a classes x classes confusion
// matrix (4096: 128 MiB of int64), so the output layer is bounded tighter.
inline constexpr int kMaxClasses = 1 << 12;
inline constexpr int64_t kMaxNetworkParameters = int64_t{1} << 26;  // 256 MiB of float

// The number of scalars in the network's tensors: W and b of every Affine,
// plus gamma, beta, running_mean and running_var of every BatchNorm. In
// 64 bits, exact for any int sizes.
int64_t NetworkParameterCount(const NetworkConfig& config);

// OK, or InvalidArgument naming the offending field (sizes <= 0, dropout
// outside [0, 1), negative lambda, momentum outside [0, 1), eps <= 0,
// std <= 0 or not finite) or the limit exceeded (kMaxHiddenLayers,
// kMaxInputSize, kMaxLayerSize, kMaxClasses, kMaxNetworkParameters).
absl::Status ValidateNetworkConfig(const NetworkConfig& config);

// As ValidateNetworkConfig, except that an input_size of 0 means "still
// open" (to be taken from the data once they are read) and passes: the other
// fields are checked, and the parameter limit with the input counted as one
// feature (a lower bound). Call ValidateNetworkConfig once the size is known.
absl::Status ValidateNetworkConfigWithOpenInput(const NetworkConfig& config);

}  // namespace bnserve

#endif  // BNSERVE_CORE_NETWORK_CONFIG_H_
