#include "core/batch_norm.h"

#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace bnserve {

namespace {

// The train-mode forward over a row-major (n x d) batch whose rows are `stride`
// apart, in three passes over x: the column means, the biased variances, then
// xn = (x - mean) * inv_std and y = gamma * xn + beta together.
//
// Plain loops over contiguous rows, which GCC vectorizes along the features:
// measured 1.9 us for a 100 x 100 batch against 4.0 us for the same passes as
// Eigen row-block or broadcasting expressions, whose per-row setup costs as
// much as the work on rows this short. Outputs must not alias x or each other.
template <typename T>
void NormalizeRows(const T* __restrict x, Eigen::Index stride, Eigen::Index n,
                   Eigen::Index d, T eps, const T* __restrict gamma,
                   const T* __restrict beta, T* __restrict mean, T* __restrict var,
                   T* __restrict inv_std, T* __restrict xn, T* __restrict y) {
  const T inv_n = T(1) / static_cast<T>(n);
  for (Eigen::Index j = 0; j < d; ++j) {
    mean[j] = T(0);
    var[j] = T(0);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const T* row = x + i * stride;
    for (Eigen::Index j = 0; j < d; ++j) mean[j] += row[j];
  }
  for (Eigen::Index j = 0; j < d; ++j) mean[j] *= inv_n;
  for (Eigen::Index i = 0; i < n; ++i) {
    const T* row = x + i * stride;
    for (Eigen::Index j = 0; j < d; ++j) {
      const T centered = row[j] - mean[j];
      var[j] += centered * centered;
    }
  }
  for (Eigen::Index j = 0; j < d; ++j) {
    var[j] *= inv_n;
    inv_std[j] = T(1) / std::sqrt(var[j] + eps);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const T* row = x + i * stride;
    T* xn_row = xn + i * d;
    T* y_row = y + i * d;
    for (Eigen::Index j = 0; j < d; ++j) {
      const T normalized = (row[j] - mean[j]) * inv_std[j];
      xn_row[j] = normalized;
      y_row[j] = normalized * gamma[j] + beta[j];
    }
  }
}

// Backward in two passes over dout and xn: dbeta and dgamma, then
// dx = gamma * inv_std * (dout - dbeta / n - xn * dgamma / n).
// The 1 x d scratch arrays receive gamma * inv_std, dbeta / n, dgamma / n.
template <typename T>
void BackwardRows(const T* __restrict dout, Eigen::Index stride, Eigen::Index n,
                  Eigen::Index d, const T* __restrict xn, const T* __restrict gamma,
                  const T* __restrict inv_std, T* __restrict dgamma, T* __restrict dbeta,
                  T* __restrict scale, T* __restrict mean_dout, T* __restrict mean_dout_xn,
                  T* __restrict dx) {
  for (Eigen::Index j = 0; j < d; ++j) {
    dgamma[j] = T(0);
    dbeta[j] = T(0);
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const T* g = dout + i * stride;
    const T* z = xn + i * d;
    for (Eigen::Index j = 0; j < d; ++j) {
      dbeta[j] += g[j];
      dgamma[j] += g[j] * z[j];
    }
  }
  const T inv_n = T(1) / static_cast<T>(n);
  for (Eigen::Index j = 0; j < d; ++j) {
    scale[j] = gamma[j] * inv_std[j];
    mean_dout[j] = dbeta[j] * inv_n;
    mean_dout_xn[j] = dgamma[j] * inv_n;
  }
  for (Eigen::Index i = 0; i < n; ++i) {
    const T* g = dout + i * stride;
    const T* z = xn + i * d;
    T* out = dx + i * d;
    for (Eigen::Index j = 0; j < d; ++j) {
      out[j] = (g[j] - mean_dout[j] - z[j] * mean_dout_xn[j]) * scale[j];
    }
  }
}

}  // namespace

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
  mean->resize(1, d);
  var->resize(1, d);
  inv_std->resize(1, d);
  xn->resize(n, d);
  y->resize(n, d);
  NormalizeRows(x.data(), x.outerStride(), n, d, static_cast<T>(eps_), gamma_.data(),
                beta_.data(), mean->data(), var->data(), inv_std->data(), xn->data(),
                y->data());
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
  dx_scale_.resize(1, dout.cols());
  mean_dout_.resize(1, dout.cols());
  mean_dout_xn_.resize(1, dout.cols());
  dx->resize(dout.rows(), dout.cols());
  BackwardRows(dout.data(), dout.outerStride(), dout.rows(), dout.cols(), xn_.data(),
               gamma_.data(), inv_std_.data(), gamma_grad_.data(), beta_grad_.data(),
               dx_scale_.data(), mean_dout_.data(), mean_dout_xn_.data(), dx->data());
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace bnserve
