#include "core/tanh_layer.h"

namespace bnserve {

template <typename T>
void Tanh<T>::Forward(const ConstMatrixRef<T>& x, MatrixT<T>* y) const {
  y->resize(x.rows(), x.cols());
  y->array() = x.array().tanh();
}

template <typename T>
void Tanh<T>::Backward(const ConstMatrixRef<T>& y, const ConstMatrixRef<T>& dout,
                       MatrixT<T>* dx) const {
  dx->resize(dout.rows(), dout.cols());
  dx->array() = dout.array() * (T(1) - y.array().square());
}

template class Tanh<float>;
template class Tanh<double>;

}  // namespace bnserve
