// Network<T>: the book's MultiLayerNetExtend on Eigen.
//
//   ASSIGN_OR_RETURN(Network<float> net, Network<float>::Create(config, seed));
//   ASSIGN_OR_RETURN(float loss, net.ComputeGradients(x, labels, &rng));
//   optimizer.Update(net.TrainableParameters());
//   ASSIGN_OR_RETURN(Matrix scores, net.Predict(x, BnMode::kInference));
//
// Every tensor has a name: W1, b1, gamma1, beta1, running_mean1, running_var1,
// ..., W{L}, b{L} for the final Affine (L = hidden layers + 1). Weights are
// (fan_in x fan_out); every per-feature tensor is 1 x N.
//
// Thread-safety: const methods (Predict, VisitHiddenLayers, Loss in inference
// mode, Accuracy, ExportTensors) may be called concurrently; anything else needs external
// synchronization. Predict never changes the running statistics, whatever the
// mode. T is float or double (explicitly instantiated for both).
#ifndef BNSERVE_CORE_NETWORK_H_
#define BNSERVE_CORE_NETWORK_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/bn_mode.h"
#include "core/eigen_types.h"
#include "core/network_config.h"
#include "core/parameter_ref.h"

namespace bnserve {

// What one hidden layer of a forward pass produced (Network::VisitHiddenLayers).
// The references are valid only during the visitor's call.
template <typename T>
struct HiddenLayerOutputs {
  int layer = 0;  // 1-based: the "1" of W1, gamma1
  const MatrixT<T>* affine = nullptr;      // Affine output
  const MatrixT<T>* batchnorm = nullptr;   // BatchNorm output; null without BatchNorm
  const MatrixT<T>* activation = nullptr;  // activation output (before Dropout)
};

template <typename T>
using HiddenLayerVisitor = std::function<absl::Status(const HiddenLayerOutputs<T>&)>;

template <typename T>
class Network {
 public:
  // A network with freshly initialized weights drawn from a generator seeded
  // with `seed`. InvalidArgument if the config does not validate.
  static absl::StatusOr<Network> Create(const NetworkConfig& config, uint64_t seed);

  // A network with `config`'s shapes whose tensors are all taken from
  // `tensors` (names and shapes must match exactly: InvalidArgument otherwise).
  static absl::StatusOr<Network> FromTensors(
      const NetworkConfig& config, const std::map<std::string, MatrixT<T>>& tensors);

  Network(Network&&) noexcept;
  Network& operator=(Network&&) noexcept;
  ~Network();

  const NetworkConfig& config() const;

  // Class scores (pre-softmax logits), one row per input row. Dropout is in
  // inference mode (scaled by 1 - ratio). BatchNorm uses the running
  // statistics (kInference) or the batch's own (kBatchStatistics; needs at
  // least 2 rows). Never updates running statistics.
  // InvalidArgument: wrong feature count, empty batch, batch of one with
  // kBatchStatistics and BN on.
  absl::StatusOr<MatrixT<T>> Predict(const ConstMatrixRef<T>& x, BnMode mode) const;

  // Predict's forward pass through the hidden layers (the same code, so the
  // same values), calling `visit` once per hidden layer, in order, with that
  // layer's outputs; the final Affine is not run. A visitor's error stops the
  // pass and is returned. Never updates running statistics. At most three
  // matrices of the batch's rows and the widest layer are alive at once
  // (ForwardFloatsPerRow in core/evaluation.h). Errors as Predict.
  absl::Status VisitHiddenLayers(const ConstMatrixRef<T>& x, BnMode mode,
                                 const HiddenLayerVisitor<T>& visit) const;

  // Softmax probabilities of Predict.
  absl::StatusOr<MatrixT<T>> PredictProbabilities(const ConstMatrixRef<T>& x,
                                                  BnMode mode) const;

  // Mean cross-entropy plus weight decay, with Predict's semantics.
  absl::StatusOr<T> Loss(const ConstMatrixRef<T>& x, const Labels& labels,
                         BnMode mode) const;

  // Fraction of rows whose argmax score equals the label.
  absl::StatusOr<double> Accuracy(const ConstMatrixRef<T>& x, const Labels& labels,
                                  BnMode mode) const;

  // One training forward and backward pass: BatchNorm in train mode (batch
  // statistics; running statistics updated), dropout masks drawn from `rng`
  // (may be null when dropout_ratio == 0). Stores the gradient of every
  // trainable tensor (read them through TrainableParameters()) and returns
  // the loss (cross-entropy + weight decay).
  // InvalidArgument: shape mismatch, labels out of range, batch of one with BN.
  absl::StatusOr<T> ComputeGradients(const ConstMatrixRef<T>& x, const Labels& labels,
                                     std::mt19937_64* rng);

  // Every trainable tensor (W, b, gamma, beta) with its gradient from the
  // last ComputeGradients, in a stable order (W1, b1, gamma1, beta1, W2, ...).
  // The pointers stay valid while the network lives and is not moved.
  std::vector<ParameterRef<T>> TrainableParameters();

  // Every tensor by name, including running_mean{i} / running_var{i}.
  std::map<std::string, MatrixT<T>> ExportTensors() const;

  // Replaces the tensors named in `tensors` (all must exist with the same
  // shape: InvalidArgument otherwise, and nothing is changed).
  absl::Status ImportTensors(const std::map<std::string, MatrixT<T>>& tensors);

 private:
  struct Impl;
  explicit Network(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

extern template class Network<float>;
extern template class Network<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_NETWORK_H_
