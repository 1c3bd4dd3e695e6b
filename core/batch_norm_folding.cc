#include "core/batch_norm_folding.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bnserve {

template <typename T>
absl::StatusOr<Network<T>> FoldBatchNorm(const Network<T>& network) {
  const NetworkConfig& config = network.config();
  NetworkConfig folded_config = config;
  folded_config.use_batchnorm = false;
  folded_config.weight_decay_lambda = 0.0;
  std::map<std::string, MatrixT<T>> tensors = network.ExportTensors();
  if (!config.use_batchnorm) return Network<T>::FromTensors(folded_config, tensors);

  std::map<std::string, MatrixT<T>> folded;
  const int hidden = static_cast<int>(config.hidden_sizes.size());
  for (int layer = 1; layer <= hidden; ++layer) {
    const MatrixT<T>& w = tensors.at(absl::StrCat("W", layer));
    const MatrixT<T>& b = tensors.at(absl::StrCat("b", layer));
    const MatrixT<T>& gamma = tensors.at(absl::StrCat("gamma", layer));
    const MatrixT<T>& beta = tensors.at(absl::StrCat("beta", layer));
    const MatrixT<T>& mean = tensors.at(absl::StrCat("running_mean", layer));
    const MatrixT<T>& var = tensors.at(absl::StrCat("running_var", layer));
    MatrixT<T> w_folded(w.rows(), w.cols());
    MatrixT<T> b_folded(1, w.cols());
    for (Eigen::Index j = 0; j < w.cols(); ++j) {
      const double denominator = static_cast<double>(var(0, j)) + config.bn_eps;
      if (!(denominator > 0.0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot fold BatchNorm layer ", layer, ": running_var", layer, "[", j,
            "] + eps = ", denominator, " is not positive"));
      }
      const double k = static_cast<double>(gamma(0, j)) / std::sqrt(denominator);
      b_folded(0, j) = static_cast<T>(
          (static_cast<double>(b(0, j)) - static_cast<double>(mean(0, j))) * k +
          static_cast<double>(beta(0, j)));
      bool finite = std::isfinite(b_folded(0, j));
      for (Eigen::Index i = 0; i < w.rows(); ++i) {
        w_folded(i, j) = static_cast<T>(static_cast<double>(w(i, j)) * k);
        finite = finite && std::isfinite(w_folded(i, j));
      }
      if (!finite) {
        return absl::InvalidArgumentError(absl::StrCat(
            "cannot fold BatchNorm layer ", layer, ": feature ", j, " (gamma ", gamma(0, j),
            ", running_var ", var(0, j), ") gives a value that is not finite"));
      }
    }
    folded.emplace(absl::StrCat("W", layer), std::move(w_folded));
    folded.emplace(absl::StrCat("b", layer), std::move(b_folded));
  }
  const std::string last = std::to_string(hidden + 1);
  folded.emplace("W" + last, tensors.at("W" + last));
  folded.emplace("b" + last, tensors.at("b" + last));
  return Network<T>::FromTensors(folded_config, folded);
}

template absl::StatusOr<Network<float>> FoldBatchNorm(const Network<float>&);
template absl::StatusOr<Network<double>> FoldBatchNorm(const Network<double>&);

}  // namespace bnserve
