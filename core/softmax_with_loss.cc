#include "core/softmax_with_loss.h"

#include <cassert>
#include <cmath>

namespace bnserve {

template <typename T>
void SoftmaxWithLoss<T>::Softmax(const ConstMatrixRef<T>& x, MatrixT<T>* y) {
  const Eigen::Matrix<T, Eigen::Dynamic, 1> row_max = x.rowwise().maxCoeff();
  y->resize(x.rows(), x.cols());
  y->array() = (x.colwise() - row_max).array().exp();
  const Eigen::Matrix<T, Eigen::Dynamic, 1> row_sum = y->rowwise().sum();
  y->array().colwise() /= row_sum.array();
}

template <typename T>
T SoftmaxWithLoss<T>::Loss(const ConstMatrixRef<T>& x, const Labels& labels) {
  SoftmaxWithLoss<T> layer;
  return layer.Forward(x, labels);
}

template <typename T>
T SoftmaxWithLoss<T>::Forward(const ConstMatrixRef<T>& x, const Labels& labels) {
  assert(x.rows() == labels.size() && x.rows() > 0);
  const Eigen::Index n = x.rows();
  row_max_ = x.rowwise().maxCoeff();
  probabilities_.resize(n, x.cols());
  probabilities_.array() = (x.colwise() - row_max_).array().exp();
  row_sum_ = probabilities_.rowwise().sum();
  probabilities_.array().colwise() /= row_sum_.array();
  // Accumulate in double: for a float network the sum of a large batch of
  // per-row losses would otherwise lose digits.
  double total = 0.0;
  for (Eigen::Index i = 0; i < n; ++i) {
    const int label = labels(i);
    assert(label >= 0 && label < x.cols());
    total += static_cast<double>(std::log(row_sum_(i)) - (x(i, label) - row_max_(i)));
  }
  return static_cast<T>(total / static_cast<double>(n));
}

template <typename T>
void SoftmaxWithLoss<T>::Backward(const Labels& labels, MatrixT<T>* dx) const {
  const Eigen::Index n = probabilities_.rows();
  assert(labels.size() == n);
  dx->resize(n, probabilities_.cols());
  *dx = probabilities_;
  for (Eigen::Index i = 0; i < n; ++i) (*dx)(i, labels(i)) -= T(1);
  *dx /= static_cast<T>(n);
}

template class SoftmaxWithLoss<float>;
template class SoftmaxWithLoss<double>;

}  // namespace bnserve
