#include "core/network.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/affine.h"
#include "core/batch_norm.h"
#include "core/dropout.h"
#include "core/gemm.h"
#include "core/relu.h"
#include "core/sigmoid.h"
#include "core/softmax_with_loss.h"
#include "core/status_macros.h"
#include "core/tanh_layer.h"

namespace bnserve {
namespace {

template <typename T>
void ActivationForward(Activation activation, const ConstMatrixRef<T>& x, MatrixT<T>* y) {
  switch (activation) {
    case Activation::kRelu:
      Relu<T>().Forward(x, y);
      return;
    case Activation::kSigmoid:
      Sigmoid<T>().Forward(x, y);
      return;
    case Activation::kTanh:
      Tanh<T>().Forward(x, y);
      return;
  }
}

// In place: *dy (dL/d output) becomes dL/d input.
template <typename T>
void ActivationBackward(Activation activation, const ConstMatrixRef<T>& y,
                        MatrixT<T>* dy) {
  switch (activation) {
    case Activation::kRelu:
      Relu<T>().Backward(y, *dy, dy);
      return;
    case Activation::kSigmoid:
      Sigmoid<T>().Backward(y, *dy, dy);
      return;
    case Activation::kTanh:
      Tanh<T>().Backward(y, *dy, dy);
      return;
  }
}

double InitStddev(const WeightInit& init, int fan_in) {
  switch (init.kind) {
    case WeightInit::Kind::kHe:
      return std::sqrt(2.0 / fan_in);
    case WeightInit::Kind::kXavier:
      return std::sqrt(1.0 / fan_in);
    case WeightInit::Kind::kStd:
      break;
  }
  return init.std;
}

}  // namespace

template <typename T>
struct Network<T>::Impl {
  explicit Impl(const NetworkConfig& network_config) : config(network_config) {
    const int hidden = static_cast<int>(config.hidden_sizes.size());
    int fan_in = config.input_size;
    affines.reserve(hidden + 1);
    for (int i = 0; i < hidden; ++i) {
      affines.emplace_back(fan_in, config.hidden_sizes[i]);
      if (config.use_batchnorm) {
        norms.emplace_back(config.hidden_sizes[i], config.bn_momentum, config.bn_eps);
      }
      if (config.dropout_ratio > 0.0) dropouts.emplace_back(config.dropout_ratio);
      fan_in = config.hidden_sizes[i];
    }
    affines.emplace_back(fan_in, config.output_size);
    affine_out.resize(hidden);
    norm_out.resize(hidden);
    act_out.resize(hidden);
    drop_out.resize(hidden);
    grad_out.resize(hidden);
    grad_in.resize(hidden);
  }

  int hidden() const { return static_cast<int>(config.hidden_sizes.size()); }
  bool use_dropout() const { return config.dropout_ratio > 0.0; }

  // What the training pass feeds the Affine after hidden layer i.
  const MatrixT<T>& HiddenOutput(int i) const {
    return use_dropout() ? drop_out[i] : act_out[i];
  }

  absl::Status CheckInput(const ConstMatrixRef<T>& x) const {
    if (x.cols() != config.input_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input has ", x.cols(), " features, the network expects ", config.input_size));
    }
    if (x.rows() == 0) return absl::InvalidArgumentError("empty batch");
    return absl::OkStatus();
  }

  absl::Status CheckLabels(const ConstMatrixRef<T>& x, const Labels& labels) const {
    if (labels.size() != x.rows()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "got ", labels.size(), " labels for a batch of ", x.rows(), " rows"));
    }
    for (Eigen::Index i = 0; i < labels.size(); ++i) {
      if (labels(i) < 0 || labels(i) >= config.output_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "label ", labels(i), " of row ", i, " is outside [0, ", config.output_size, ")"));
      }
    }
    return absl::OkStatus();
  }

  // 0.5 * lambda * sum(W^2) over every Affine W (0 without weight decay).
  T WeightDecayLoss() const {
    if (config.weight_decay_lambda == 0.0) return T(0);
    T sum = 0;
    for (const Affine<T>& affine : affines) sum += affine.weights().squaredNorm();
    return static_cast<T>(0.5 * config.weight_decay_lambda) * sum;
  }

  // Predict's hidden layers: leaves in *h the input of the final Affine
  // (unset when there is no hidden layer) and, when `visit` is set, shows it
  // every hidden layer's outputs. Touches no member.
  absl::Status HiddenForward(const ConstMatrixRef<T>& x, BnMode mode,
                             const HiddenLayerVisitor<T>* visit, MatrixT<T>* h) const {
    RETURN_IF_ERROR(CheckInput(x));
    // a: Affine output, b: BatchNorm output. Without a visitor the activation
    // and dropout run in place; with one the activation gets a matrix of its
    // own (`act`), and the previous layer's output is released once the
    // Affine has read it, so three matrices are alive at once either way.
    MatrixT<T> a, b, act;
    for (int i = 0; i < hidden(); ++i) {
      if (i == 0) {
        affines[i].Forward(x, &a);
      } else {
        affines[i].Forward(*h, &a);
        if (visit != nullptr) h->resize(0, 0);
      }
      MatrixT<T>* z = &a;
      if (config.use_batchnorm) {
        if (mode == BnMode::kInference) {
          norms[i].ForwardInference(a, &b);
        } else {
          RETURN_IF_ERROR(norms[i].ForwardBatchStatistics(a, &b));
        }
        z = &b;
      }
      MatrixT<T>* y = visit != nullptr ? &act : z;
      ActivationForward<T>(config.activation, *z, y);
      if (visit != nullptr) {
        HiddenLayerOutputs<T> outputs;
        outputs.layer = i + 1;
        outputs.affine = &a;
        outputs.batchnorm = config.use_batchnorm ? &b : nullptr;
        outputs.activation = &act;
        RETURN_IF_ERROR((*visit)(outputs));
      }
      if (use_dropout()) dropouts[i].ForwardInference(*y, y);
      h->swap(*y);
    }
    return absl::OkStatus();
  }

  // The scores with Predict's semantics; touches no member.
  absl::StatusOr<MatrixT<T>> Scores(const ConstMatrixRef<T>& x, BnMode mode) const {
    MatrixT<T> h;
    RETURN_IF_ERROR(HiddenForward(x, mode, nullptr, &h));
    MatrixT<T> scores;
    if (hidden() == 0) {
      affines.back().Forward(x, &scores);
    } else {
      affines.back().Forward(h, &scores);
    }
    return scores;
  }

  // Calls fn(name, tensor) for every tensor of `self` in export order;
  // tensor is const exactly when `self` is.
  template <typename Self, typename Fn>
  static void ForEachTensor(Self& self, Fn&& fn) {
    for (int i = 0; i <= self.hidden(); ++i) {
      const int k = i + 1;
      fn(absl::StrCat("W", k), self.affines[i].weights());
      fn(absl::StrCat("b", k), self.affines[i].bias());
      if (i < self.hidden() && self.config.use_batchnorm) {
        fn(absl::StrCat("gamma", k), self.norms[i].gamma());
        fn(absl::StrCat("beta", k), self.norms[i].beta());
        fn(absl::StrCat("running_mean", k), self.norms[i].running_mean());
        fn(absl::StrCat("running_var", k), self.norms[i].running_var());
      }
    }
  }

  // Every tensor in export order, by name.
  std::vector<std::pair<std::string, MatrixT<T>*>> Tensors() {
    std::vector<std::pair<std::string, MatrixT<T>*>> tensors;
    ForEachTensor(*this, [&tensors](std::string name, MatrixT<T>& tensor) {
      tensors.emplace_back(std::move(name), &tensor);
    });
    return tensors;
  }

  NetworkConfig config;
  std::vector<Affine<T>> affines;      // hidden() + 1
  std::vector<BatchNorm<T>> norms;     // hidden() when use_batchnorm
  std::vector<Dropout<T>> dropouts;    // hidden() when dropout_ratio > 0
  SoftmaxWithLoss<T> output;

  // Training buffers per hidden layer, reused by every ComputeGradients so
  // that a loop with a stable batch size does not allocate.
  std::vector<MatrixT<T>> affine_out;  // Affine output
  std::vector<MatrixT<T>> norm_out;    // BatchNorm output (BN on)
  std::vector<MatrixT<T>> act_out;     // activation output
  std::vector<MatrixT<T>> drop_out;    // Dropout output (dropout on)
  std::vector<MatrixT<T>> grad_out;    // dL/d(hidden layer output), then d(pre-BN)
  std::vector<MatrixT<T>> grad_in;     // dL/d(Affine output) when BN is on
  MatrixT<T> scores;
  MatrixT<T> grad_scores;
  // The packing buffers of every training product, shared so that they stay
  // hot in cache from one product to the next.
  GemmWorkspace<T> gemm;
};

template <typename T>
Network<T>::Network(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
template <typename T>
Network<T>::Network(Network&&) noexcept = default;
template <typename T>
Network<T>& Network<T>::operator=(Network&&) noexcept = default;
template <typename T>
Network<T>::~Network() = default;

template <typename T>
absl::StatusOr<Network<T>> Network<T>::Create(const NetworkConfig& config, uint64_t seed) {
  RETURN_IF_ERROR(ValidateNetworkConfig(config));
  auto impl = std::make_unique<Impl>(config);
  // One generator, weights drawn in a fixed order (W1, W2, ...) and row-major
  // within each W. std::normal_distribution's algorithm is the standard
  // library's; we build with one libstdc++, so a seed means the same weights.
  std::mt19937_64 rng(seed);
  for (Affine<T>& affine : impl->affines) {
    std::normal_distribution<double> normal(0.0, InitStddev(config.weight_init, affine.fan_in()));
    MatrixT<T>& w = affine.weights();
    T* data = w.data();
    for (Eigen::Index i = 0; i < w.size(); ++i) data[i] = static_cast<T>(normal(rng));
  }
  return Network(std::move(impl));
}

template <typename T>
absl::StatusOr<Network<T>> Network<T>::FromTensors(
    const NetworkConfig& config, const std::map<std::string, MatrixT<T>>& tensors) {
  RETURN_IF_ERROR(ValidateNetworkConfig(config));
  // Names and shapes are checked against the config before the network is
  // built: an untrusted config with no tensors must not allocate its
  // parameters (19 bytes of a 1048576-63-1 config were 504 MiB).
  struct Expected {
    std::string name;
    Eigen::Index rows, cols;
  };
  std::vector<Expected> expected;
  const int hidden = static_cast<int>(config.hidden_sizes.size());
  for (int i = 0; i <= hidden; ++i) {
    const int k = i + 1;
    const Eigen::Index in = i == 0 ? config.input_size : config.hidden_sizes[i - 1];
    const Eigen::Index out = i < hidden ? config.hidden_sizes[i] : config.output_size;
    expected.push_back({absl::StrCat("W", k), in, out});
    expected.push_back({absl::StrCat("b", k), 1, out});
    if (i < hidden && config.use_batchnorm) {
      for (const char* name : {"gamma", "beta", "running_mean", "running_var"}) {
        expected.push_back({absl::StrCat(name, k), 1, out});
      }
    }
  }
  for (const Expected& e : expected) {
    auto it = tensors.find(e.name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("missing tensor ", e.name));
    }
    if (it->second.rows() != e.rows || it->second.cols() != e.cols) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", e.name, " has shape ",
                                                     it->second.rows(), "x", it->second.cols(),
                                                     ", expected ", e.rows, "x", e.cols));
    }
  }
  if (tensors.size() != expected.size()) {
    for (const auto& [name, value] : tensors) {
      bool known = false;
      for (const Expected& e : expected) known = known || e.name == name;
      if (!known) return absl::InvalidArgumentError(absl::StrCat("unknown tensor ", name));
    }
  }
  Network network(std::make_unique<Impl>(config));
  RETURN_IF_ERROR(network.ImportTensors(tensors));
  return network;
}

template <typename T>
const NetworkConfig& Network<T>::config() const {
  return impl_->config;
}

template <typename T>
absl::StatusOr<MatrixT<T>> Network<T>::Predict(const ConstMatrixRef<T>& x,
                                               BnMode mode) const {
  return impl_->Scores(x, mode);
}

template <typename T>
absl::Status Network<T>::VisitHiddenLayers(const ConstMatrixRef<T>& x, BnMode mode,
                                           const HiddenLayerVisitor<T>& visit) const {
  MatrixT<T> h;
  return impl_->HiddenForward(x, mode, &visit, &h);
}

template <typename T>
absl::StatusOr<MatrixT<T>> Network<T>::PredictProbabilities(const ConstMatrixRef<T>& x,
                                                            BnMode mode) const {
  ASSIGN_OR_RETURN(MatrixT<T> scores, impl_->Scores(x, mode));
  MatrixT<T> probabilities;
  SoftmaxWithLoss<T>::Softmax(scores, &probabilities);
  return probabilities;
}

template <typename T>
absl::StatusOr<T> Network<T>::Loss(const ConstMatrixRef<T>& x, const Labels& labels,
                                   BnMode mode) const {
  RETURN_IF_ERROR(impl_->CheckInput(x));
  RETURN_IF_ERROR(impl_->CheckLabels(x, labels));
  ASSIGN_OR_RETURN(MatrixT<T> scores, impl_->Scores(x, mode));
  return SoftmaxWithLoss<T>::Loss(scores, labels) + impl_->WeightDecayLoss();
}

template <typename T>
absl::StatusOr<double> Network<T>::Accuracy(const ConstMatrixRef<T>& x,
                                            const Labels& labels, BnMode mode) const {
  RETURN_IF_ERROR(impl_->CheckInput(x));
  RETURN_IF_ERROR(impl_->CheckLabels(x, labels));
  ASSIGN_OR_RETURN(MatrixT<T> scores, impl_->Scores(x, mode));
  Eigen::Index correct = 0;
  for (Eigen::Index i = 0; i < scores.rows(); ++i) {
    Eigen::Index best = 0;
    scores.row(i).maxCoeff(&best);
    if (best == labels(i)) ++correct;
  }
  return static_cast<double>(correct) / static_cast<double>(scores.rows());
}

template <typename T>
absl::StatusOr<T> Network<T>::ComputeGradients(const ConstMatrixRef<T>& x,
                                               const Labels& labels,
                                               std::mt19937_64* rng) {
  Impl& m = *impl_;
  // Validate everything before the first BatchNorm updates running statistics.
  RETURN_IF_ERROR(m.CheckInput(x));
  RETURN_IF_ERROR(m.CheckLabels(x, labels));
  if (m.config.use_batchnorm && m.hidden() > 0 && x.rows() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "training with BatchNorm needs a batch of at least 2 rows, got ", x.rows()));
  }
  if (m.use_dropout() && rng == nullptr) {
    return absl::InvalidArgumentError("dropout_ratio > 0 needs a random generator");
  }
  const int hidden = m.hidden();

  // Forward, keeping every intermediate for the backward pass.
  for (int i = 0; i < hidden; ++i) {
    if (i == 0) {
      m.affines[i].ForwardTrain(x, &m.affine_out[i], &m.gemm);
    } else {
      m.affines[i].ForwardTrain(m.HiddenOutput(i - 1), &m.affine_out[i], &m.gemm);
    }
    const MatrixT<T>* act_in = &m.affine_out[i];
    if (m.config.use_batchnorm) {
      RETURN_IF_ERROR(m.norms[i].ForwardTrain(m.affine_out[i], &m.norm_out[i]));
      act_in = &m.norm_out[i];
    }
    ActivationForward<T>(m.config.activation, *act_in, &m.act_out[i]);
    if (m.use_dropout()) m.dropouts[i].ForwardTrain(m.act_out[i], rng, &m.drop_out[i]);
  }
  if (hidden == 0) {
    m.affines.back().ForwardTrain(x, &m.scores, &m.gemm);
  } else {
    m.affines.back().ForwardTrain(m.HiddenOutput(hidden - 1), &m.scores, &m.gemm);
  }
  const T loss = m.output.Forward(m.scores, labels) + m.WeightDecayLoss();

  // Backward.
  m.output.Backward(labels, &m.grad_scores);
  if (hidden == 0) {
    m.affines.back().Backward(x, m.grad_scores, nullptr, &m.gemm);
  } else {
    m.affines.back().Backward(m.HiddenOutput(hidden - 1), m.grad_scores,
                              &m.grad_out[hidden - 1], &m.gemm);
  }
  for (int i = hidden - 1; i >= 0; --i) {
    MatrixT<T>* grad = &m.grad_out[i];
    if (m.use_dropout()) m.dropouts[i].Backward(*grad, grad);
    ActivationBackward<T>(m.config.activation, m.act_out[i], grad);
    if (m.config.use_batchnorm) {
      m.norms[i].Backward(*grad, &m.grad_in[i]);
      grad = &m.grad_in[i];
    }
    // Nobody needs dL/dx of the first layer: skip its (largest) product.
    if (i == 0) {
      m.affines[i].Backward(x, *grad, nullptr, &m.gemm);
    } else {
      m.affines[i].Backward(m.HiddenOutput(i - 1), *grad, &m.grad_out[i - 1], &m.gemm);
    }
  }
  if (m.config.weight_decay_lambda != 0.0) {
    const T lambda = static_cast<T>(m.config.weight_decay_lambda);
    for (Affine<T>& affine : m.affines) {
      affine.weights_grad() += lambda * affine.weights();
    }
  }
  return loss;
}

template <typename T>
std::vector<ParameterRef<T>> Network<T>::TrainableParameters() {
  Impl& m = *impl_;
  std::vector<ParameterRef<T>> params;
  for (int i = 0; i <= m.hidden(); ++i) {
    const int k = i + 1;
    Affine<T>& affine = m.affines[i];
    params.push_back({absl::StrCat("W", k), &affine.weights(), &affine.weights_grad()});
    params.push_back({absl::StrCat("b", k), &affine.bias(), &affine.bias_grad()});
    if (i < m.hidden() && m.config.use_batchnorm) {
      BatchNorm<T>& norm = m.norms[i];
      params.push_back({absl::StrCat("gamma", k), &norm.gamma(), &norm.gamma_grad()});
      params.push_back({absl::StrCat("beta", k), &norm.beta(), &norm.beta_grad()});
    }
  }
  return params;
}

template <typename T>
std::map<std::string, MatrixT<T>> Network<T>::ExportTensors() const {
  std::map<std::string, MatrixT<T>> tensors;
  const Impl& impl = *impl_;
  Impl::ForEachTensor(impl, [&tensors](std::string name, const MatrixT<T>& tensor) {
    tensors.emplace(std::move(name), tensor);
  });
  return tensors;
}

template <typename T>
absl::Status Network<T>::ImportTensors(const std::map<std::string, MatrixT<T>>& tensors) {
  const std::vector<std::pair<std::string, MatrixT<T>*>> known = impl_->Tensors();
  std::map<std::string, MatrixT<T>*> by_name(known.begin(), known.end());
  // Validate everything first so that a bad request changes nothing.
  for (const auto& [name, value] : tensors) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown tensor ", name));
    }
    const MatrixT<T>& current = *it->second;
    if (value.rows() != current.rows() || value.cols() != current.cols()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, " has shape ", value.rows(), "x", value.cols(), ", expected ",
          current.rows(), "x", current.cols()));
    }
  }
  for (const auto& [name, value] : tensors) *by_name[name] = value;
  return absl::OkStatus();
}

template class Network<float>;
template class Network<double>;

}  // namespace bnserve
