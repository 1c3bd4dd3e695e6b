#include "core/sigmoid.h"

namespace bnserve {

template <typename T>
void Sigmoid<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* y) const {
  y->resize(x.rows(), x.cols());
  // Eigen's logistic() is vectorized and saturates without overflow.
  y->array() = x.array().logistic();
}

template <typename T>
void Sigmoid<T>::Backward(const ConstMatrixRef<T>& y, const ConstMatrixRef<T>& dout,
                          MatrixT<T>* dx) const {
  dx->resize(dout.rows(), dout.cols());
  dx->array() = dout.array() * y.array() * (T(1) - y.array());
}

template class Sigmoid<float>;
template class Sigmoid<double>;

}  // namespace bnserve
