#include "core/batch_norm.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace bnserve {

template <typename T>
BatchNorm<T>::BatchNorm(int features, double momentum, double eps)
    : momentum_(momentum),
      eps_(eps),
      gamma_(MatrixT<T>::Ones(1, features)),
      beta_(MatrixT<T>::Zero(1, features)),
      running_mean_(MatrixT<T>::Zero(1, features)),
      running_var_(MatrixT<T>::Ones(1, features)),
      gamma_grad_(MatrixT<T>::Zero(1, features)),
      beta_grad_(MatrixT<T>::Zero(1, features)) {
  assert(features > 0);
  assert(momentum >= 0.0 && momentum < 1.0);
  assert(eps > 0.0);
}

template <typename T>
absl::Status BatchNorm<T>::CheckTrainInput(const ConstMatrixRef<T>& x) const {
  if (x.cols() != gamma_.cols()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BatchNorm: input has ", x.cols(), " features, expected ", gamma_.cols()));
  }
  if (x.rows() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BatchNorm: batch statistics need at least 2 rows, got ", x.rows()));
  }
  return absl::OkStatus();
}

template <typename T>
void BatchNorm<T>::Normalize(const ConstMatrixRef<T>& x, MatrixT<T>* mean,
                             MatrixT<T>* var, MatrixT<T>* inv_std, MatrixT<T>* xn,
                             MatrixT<T>* y) const {
  const Eigen::Index n = x.rows();
  const Eigen::Index d = x.cols();
  const T inv_n = T(1) / static_cast<T>(n);
  mean->resize(1, d);
  var->resize(1, d);
  inv_std->resize(1, d);
  xn->resize(n, d);
  y->resize(n, d);
  // Column reductions over a row-major matrix: Eigen accumulates whole rows
  // as packets, so every pass below is vectorized along the features.
  mean->noalias() = x.colwise().sum() * inv_n;
  xn->noalias() = x.rowwise() - mean->row(0);  // xc, normalized in place below
  var->noalias() = xn->array().square().matrix().colwise().sum() * inv_n;
  inv_std->array() = (var->array() + static_cast<T>(eps_)).sqrt().inverse();
  xn->array().rowwise() *= inv_std->array().row(0);
  y->array() = (xn->array().rowwise() * gamma_.array().row(0)).rowwise() +
               beta_.array().row(0);
}

template <typename T>
absl::Status BatchNorm<T>::ForwardTrain(const ConstMatrixRef<T>& x, MatrixT<T>* y) {
  if (absl::Status status = CheckTrainInput(x); !status.ok()) return status;
  Normalize(x, &batch_mean_, &batch_var_, &inv_std_, &xn_, y);
  const T m = static_cast<T>(momentum_);
  const T one_minus_m = static_cast<T>(1.0 - momentum_);
  running_mean_ = m * running_mean_ + one_minus_m * batch_mean_;
  running_var_ = m * running_var_ + one_minus_m * batch_var_;
  return absl::OkStatus();
}

template <typename T>
absl::Status BatchNorm<T>::ForwardBatchStatistics(const ConstMatrixRef<T>& x,
                                                  MatrixT<T>* y) const {
  if (absl::Status status = CheckTrainInput(x); !status.ok()) return status;
  MatrixT<T> mean, var, inv_std, xn;
  Normalize(x, &mean, &var, &inv_std, &xn, y);
  return absl::OkStatus();
}

template <typename T>
void BatchNorm<T>::ForwardInference(const ConstMatrixRef<T>& x, MatrixT<T>* y) const {
  assert(x.cols() == gamma_.cols());
  const RowVectorT<T> scale =
      gamma_.array() / (running_var_.array() + static_cast<T>(eps_)).sqrt();
  const RowVectorT<T> shift = beta_.array() - running_mean_.array() * scale.array();
  y->resize(x.rows(), x.cols());
  y->array() = (x.array().rowwise() * scale.array()).rowwise() + shift.array();
}

template <typename T>
void BatchNorm<T>::Backward(const ConstMatrixRef<T>& dout, MatrixT<T>* dx) {
  assert(dout.rows() == xn_.rows() && dout.cols() == xn_.cols());
  const T inv_n = T(1) / static_cast<T>(dout.rows());
  beta_grad_.noalias() = dout.colwise().sum();
  gamma_grad_.noalias() = (xn_.array() * dout.array()).matrix().colwise().sum();
  // dx = gamma / std * (dout - dbeta / N - xn * dgamma / N)
  dx_scale_.noalias() = (gamma_.array() * inv_std_.array()).matrix();
  mean_dout_.noalias() = beta_grad_ * inv_n;
  mean_dout_xn_.noalias() = gamma_grad_ * inv_n;
  dx->resize(dout.rows(), dout.cols());
  dx->array() = ((dout.array().rowwise() - mean_dout_.array()) -
                 xn_.array().rowwise() * mean_dout_xn_.array())
                    .rowwise() *
                dx_scale_.array();
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace bnserve
