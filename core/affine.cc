#include "core/affine.h"

#include <cassert>

namespace bnserve {

template <typename T>
Affine<T>::Affine(int fan_in, int fan_out)
    : weights_(MatrixT<T>::Zero(fan_in, fan_out)),
      bias_(MatrixT<T>::Zero(1, fan_out)),
      weights_grad_(MatrixT<T>::Zero(fan_in, fan_out)),
      bias_grad_(MatrixT<T>::Zero(1, fan_out)) {}

template <typename T>
void Affine<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* out) const {
  assert(x.cols() == weights_.rows());
  out->resize(x.rows(), weights_.cols());
  // Broadcast the bias first and let the product accumulate onto it: one
  // pass over the output instead of two.
  out->rowwise() = bias_.row(0);
  out->noalias() += x * weights_;
}

template <typename T>
void Affine<T>::Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& dout,
                         MatrixT<T>* dx) {
  assert(x.rows() == dout.rows());
  assert(x.cols() == weights_.rows() && dout.cols() == weights_.cols());
  weights_grad_.noalias() = x.transpose() * dout;
  bias_grad_.noalias() = dout.colwise().sum();
  if (dx != nullptr) {
    dx->resize(dout.rows(), weights_.rows());
    dx->noalias() = dout * weights_.transpose();
  }
}

template class Affine<float>;
template class Affine<double>;

}  // namespace bnserve
