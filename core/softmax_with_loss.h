// SoftmaxWithLoss<T>: the book's output layer (common/layers.py): softmax of
// the class scores and the mean cross-entropy against integer labels.
//
// Numerics: softmax subtracts each row's maximum before exponentiating, and
// the loss of a row is log(sum(exp(x - max))) - (x[label] - max), i.e. the
// exact -log(softmax(x)[label]) computed stably. The book instead evaluates
// -log(y + 1e-7); the two agree to about 1e-7 unless a probability underflows,
// and ours is the function whose gradient Backward returns exactly.
//
// Forward keeps the probabilities for Backward.
// Thread-safety: static and const methods may be called concurrently;
// Forward needs external synchronization.
#ifndef BNSERVE_CORE_SOFTMAX_WITH_LOSS_H_
#define BNSERVE_CORE_SOFTMAX_WITH_LOSS_H_

#include "core/eigen_types.h"

namespace bnserve {

template <typename T>
class SoftmaxWithLoss {
 public:
  // Row-wise softmax of the scores x. *y may not alias x.
  static void Softmax(const ConstMatrixRef<T>& x, MatrixT<T>* y);

  // The mean cross-entropy of Forward without keeping anything (bit-identical
  // to Forward's return value).
  // REQUIRES: as Forward.
  static T Loss(const ConstMatrixRef<T>& x, const Labels& labels);

  // Stores softmax(x) and returns the mean over rows of -log softmax(x)[label].
  // REQUIRES: x.rows() == labels.size() > 0, 0 <= labels(i) < x.cols()
  // (the caller validates).
  T Forward(const ConstMatrixRef<T>& x, const Labels& labels);

  // *dx = (softmax(x) - onehot(labels)) / batch for the last Forward.
  // REQUIRES: labels are those of the last Forward.
  void Backward(const Labels& labels, MatrixT<T>* dx) const;

  // The probabilities of the last Forward.
  const MatrixT<T>& probabilities() const { return probabilities_; }

 private:
  MatrixT<T> probabilities_;
  // Per row: the maximum score and the sum of exp(x - max).
  Eigen::Matrix<T, Eigen::Dynamic, 1> row_max_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> row_sum_;
};

extern template class SoftmaxWithLoss<float>;
extern template class SoftmaxWithLoss<double>;

}  // namespace bnserve

#endif  // BNSERVE_CORE_SOFTMAX_WITH_LOSS_H_
